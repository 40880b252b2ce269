package file

import (
	"bufio"
	"context"
	"encoding"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/internal/engine"
)

// CSVOpt configures NewCSVSource and NewCSVDirSource: the options of this
// package that return a SourceOpt (BatchSize, MaxLineLength) and the
// CSV-only ones (Comma, Comment, LazyQuotes, TrimLeadingSpace). The
// interface is sealed.
type CSVOpt interface{ applyCSV(*csvConfig) }

type csvConfig struct {
	sourceConfig
	comma, comment   rune
	lazy, trimLeader bool
}

type csvOpt func(*csvConfig)

func (o csvOpt) applyCSV(c *csvConfig) { o(c) }

// Comma sets the field separator (default ','), as csv.Reader's Comma.
func Comma(r rune) CSVOpt { return csvOpt(func(c *csvConfig) { c.comma = r }) }

// Comment makes lines that start with r comments, skipped (default: no
// comments), as csv.Reader's Comment.
func Comment(r rune) CSVOpt { return csvOpt(func(c *csvConfig) { c.comment = r }) }

// LazyQuotes accepts quotes in unquoted fields and lone quotes in quoted
// ones, as csv.Reader's LazyQuotes.
func LazyQuotes() CSVOpt { return csvOpt(func(c *csvConfig) { c.lazy = true }) }

// TrimLeadingSpace ignores leading white space in fields, as csv.Reader's
// TrimLeadingSpace.
func TrimLeadingSpace() CSVOpt { return csvOpt(func(c *csvConfig) { c.trimLeader = true }) }

func newCSVConfig(opts []CSVOpt) csvConfig {
	c := csvConfig{sourceConfig: sourceConfig{batch: DefaultBatchSize}, comma: ','}
	for _, o := range opts {
		if o != nil {
			o.applyCSV(&c)
		}
	}
	return c
}

// NewCSVSource reads the CSV file at path (RFC 4180, read with
// encoding/csv), whose first record is a header naming the columns, and
// decodes every later record into a T by column name, in one partition
// named by the file's base name, like Bytewax's CSVSource.
//
// T is a struct or map[string]string. A map receives every column. A
// struct's exported fields are matched to columns by their `csv:"name"`
// tag, or else by the field name, exactly or, failing that, ignoring case;
// `csv:"-"` skips a field and `csv:"name,optional"` lets its column be
// absent from the header (the field then stays zero). Every other field
// must have a column, or the run fails before the first item, naming the
// file and the missing columns: a misspelt name is not read as empty.
// Columns without a field are ignored. Fields may be strings, bools,
// integers, floats, time.Duration (time.ParseDuration), time.Time
// (RFC 3339), types implementing encoding.TextUnmarshaler, or pointers to
// any of these (nil for an empty field); an empty field leaves a number,
// bool or time zero. For times in another layout, read a string field and
// parse it in an op.TryMap, or use a type with UnmarshalText.
//
// Every record must have as many fields as the header. A malformed record
// (a bad quote, a wrong field count) or a field that does not parse stops
// the run with an error naming the file, the record's byte offset, its
// line (when the run started at the top of the file) and, for a field, its
// column; nothing is skipped silently.
//
// The position is the byte offset of the next unread record, as for
// NewSource: a resumed run reads the header again, then seeks there; a
// file that grew between runs is continued; a file shorter than its
// recovered position is refused with ErrPastEnd. BatchSize and
// MaxLineLength (which limits a whole record) apply; an over-long record
// is only detected after it is read.
func NewCSVSource[T any](path string, opts ...CSVOpt) runnel.Source[T] {
	return runnel.PartitionedInput[T, int64](&csvSource[T]{
		single: path,
		cfg:    newCSVConfig(opts),
		lister: dirLister{},
	})
}

// NewCSVDirSource reads the CSV files in dir whose names match glob, one
// partition per file, each read like NewCSVSource (with its own header),
// partitions named and listed as in NewDirSource.
func NewCSVDirSource[T any](dir, glob string, opts ...CSVOpt) runnel.Source[T] {
	return runnel.PartitionedInput[T, int64](&csvSource[T]{
		cfg:    newCSVConfig(opts),
		lister: dirLister{dir: dir, glob: glob},
	})
}

type csvSource[T any] struct {
	single string // the path of a single-file source, or ""
	cfg    csvConfig
	lister dirLister
}

func (s *csvSource[T]) ListParts(ctx context.Context) ([]string, error) {
	if s.single != "" {
		return []string{filepath.Base(s.single)}, nil
	}
	return s.lister.ListParts(ctx)
}

func (s *csvSource[T]) BuildPart(_ runnel.BuildContext, part string, resume *int64) (runnel.StatefulSourcePartition[T, int64], error) {
	path := s.single
	if path == "" {
		var err error
		if path, err = s.lister.path(part); err != nil {
			return nil, err
		}
	} else if part != filepath.Base(path) {
		return nil, fmt.Errorf("file: no partition %q in source %s", part, path)
	}
	if err := s.cfg.validate(); err != nil {
		return nil, err
	}
	dec, err := newRecordDecoder[T]()
	if err != nil {
		return nil, fmt.Errorf("file: CSV source %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file: open CSV source: %w", err)
	}
	p := &csvPart[T]{path: path, f: f, cfg: s.cfg, dec: dec}
	if err := p.open(resume); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

// csvPart reads one CSV file. It is used by one worker only.
type csvPart[T any] struct {
	path string
	f    *os.File
	cfg  csvConfig
	dec  *recordDecoder[T]
	r    *csv.Reader
	base int64 // the file offset the reader started at
	pos  int64 // offset of the next unread record
	// lineKnown says the reader started at the top of the file, so its
	// line numbers are the file's.
	lineKnown bool
	batch     []T
	eof       bool
}

func (p *csvPart[T]) newReader(at int64) {
	r := csv.NewReader(bufio.NewReaderSize(p.f, readBuffer))
	r.Comma, r.Comment = p.cfg.comma, p.cfg.comment
	r.LazyQuotes, r.TrimLeadingSpace = p.cfg.lazy, p.cfg.trimLeader
	r.ReuseRecord = true
	p.r, p.base, p.pos = r, at, at
}

// open reads the header, then seeks to the resume offset.
func (p *csvPart[T]) open(resume *int64) error {
	p.newReader(0)
	p.lineKnown = true
	header, err := p.r.Read()
	if err == io.EOF {
		// An empty file: no header yet. The position stays 0, so a run
		// after the file was written reads its header.
		if resume != nil && *resume > 0 {
			return engine.StaleState(fmt.Errorf("file: CSV source %s: %w (position %d, size 0)", p.path, ErrPastEnd, *resume))
		}
		p.eof = true
		return nil
	}
	if err != nil {
		return p.recordError(0, err)
	}
	p.pos = p.r.InputOffset()
	if p.cfg.maxLine > 0 && p.pos > int64(p.cfg.maxLine)+2 {
		return fmt.Errorf("file: read %s at offset 0: header: %w: longer than %d bytes", p.path, ErrLineTooLong, p.cfg.maxLine)
	}
	if err := p.dec.bind(header); err != nil {
		return fmt.Errorf("file: CSV source %s: %w", p.path, err)
	}
	if resume == nil || *resume == 0 || *resume == p.pos {
		return nil
	}
	off := *resume
	if off < p.pos {
		return engine.StaleState(fmt.Errorf("file: CSV source %s: recovered position %d lies inside the header (which ends at %d): the file was replaced", p.path, off, p.pos))
	}
	fi, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("file: CSV source: %w", err)
	}
	if off > fi.Size() {
		return engine.StaleState(fmt.Errorf("file: CSV source %s: %w (position %d, size %d)", p.path, ErrPastEnd, off, fi.Size()))
	}
	if _, err := p.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("file: CSV source: %w", err)
	}
	p.newReader(off)
	p.lineKnown = false
	return nil
}

// recordError names the file, the offset of the record that failed and,
// when known, its line.
func (p *csvPart[T]) recordError(at int64, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if p.lineKnown {
			return fmt.Errorf("file: read %s at offset %d (line %d, column %d): %w", p.path, at, pe.Line, pe.Column, pe.Err)
		}
		return fmt.Errorf("file: read %s at offset %d: %w", p.path, at, pe.Err)
	}
	return fmt.Errorf("file: read %s at offset %d: %w", p.path, at, err)
}

// NextBatch decodes up to the batch size of records; io.EOF at the end.
func (p *csvPart[T]) NextBatch() ([]T, error) {
	if p.eof {
		return nil, io.EOF
	}
	clear(p.batch)
	p.batch = p.batch[:0]
	for len(p.batch) < p.cfg.batch {
		rec, err := p.r.Read()
		if err == io.EOF {
			p.eof = true
			if len(p.batch) == 0 {
				return nil, io.EOF
			}
			break
		}
		if err != nil {
			return nil, p.recordError(p.pos, err)
		}
		end := p.base + p.r.InputOffset()
		if p.cfg.maxLine > 0 && end-p.pos > int64(p.cfg.maxLine)+2 {
			return nil, fmt.Errorf("file: read %s at offset %d: %w: record longer than %d bytes", p.path, p.pos, ErrLineTooLong, p.cfg.maxLine)
		}
		var x T
		if err := p.dec.decode(rec, &x); err != nil {
			if p.lineKnown {
				line, _ := p.r.FieldPos(0)
				return nil, fmt.Errorf("file: read %s at offset %d (line %d): %w", p.path, p.pos, line, err)
			}
			return nil, fmt.Errorf("file: read %s at offset %d: %w", p.path, p.pos, err)
		}
		p.batch = append(p.batch, x)
		p.pos = end
	}
	return p.batch, nil
}

// NextAwake is always "at once".
func (p *csvPart[T]) NextAwake() time.Time { return time.Time{} }

// Snapshot is the offset of the next unread record.
func (p *csvPart[T]) Snapshot() (int64, error) { return p.pos, nil }

func (p *csvPart[T]) Close() error {
	if err := p.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("file: close CSV source: %w", err)
	}
	return nil
}

// recordDecoder turns records into T by the header's column names.
type recordDecoder[T any] struct {
	isMap   bool
	fields  []csvField
	header  []string
	columns []int // column of each field, -1 for an absent optional one
}

type csvField struct {
	name     string
	index    []int
	optional bool
	parse    func(s string, v reflect.Value) error
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func newRecordDecoder[T any]() (*recordDecoder[T], error) {
	t := reflect.TypeFor[T]()
	if t == reflect.TypeFor[map[string]string]() {
		return &recordDecoder[T]{isMap: true}, nil
	}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("cannot decode records into %s: want a struct or map[string]string", t)
	}
	d := &recordDecoder[T]{}
	for _, sf := range reflect.VisibleFields(t) {
		if !sf.IsExported() || sf.Anonymous || throughPointer(t, sf.Index) {
			continue
		}
		name, opt, _ := strings.Cut(sf.Tag.Get("csv"), ",")
		if name == "-" && opt == "" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		parse, err := fieldParser(sf.Type)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", sf.Name, err)
		}
		d.fields = append(d.fields, csvField{name: name, index: sf.Index, optional: opt == "optional", parse: parse})
	}
	return d, nil
}

// throughPointer says a promoted field is reached through an embedded
// pointer, which may be nil: such fields are not decoded.
func throughPointer(t reflect.Type, index []int) bool {
	for i := 1; i < len(index); i++ {
		if t.FieldByIndex(index[:i]).Type.Kind() == reflect.Pointer {
			return true
		}
	}
	return false
}

// bind maps the fields to the header's columns.
func (d *recordDecoder[T]) bind(header []string) error {
	d.header = slices.Clone(header)
	if len(d.header) > 0 {
		// Spreadsheets often start a UTF-8 CSV file with a byte order mark.
		d.header[0] = strings.TrimPrefix(d.header[0], "\ufeff")
	}
	if d.isMap {
		return nil
	}
	for i, h := range d.header {
		if slices.Contains(d.header[:i], h) {
			return fmt.Errorf("column %q appears twice in the header", h)
		}
	}
	d.columns = make([]int, len(d.fields))
	var missing []string
	for i, f := range d.fields {
		col := slices.Index(d.header, f.name)
		if col < 0 {
			col = slices.IndexFunc(d.header, func(h string) bool { return strings.EqualFold(h, f.name) })
		}
		if col < 0 && !f.optional {
			missing = append(missing, f.name)
		}
		d.columns[i] = col
	}
	if len(missing) > 0 {
		return fmt.Errorf("the header %q has no column %q (tag a field `csv:\"name,optional\"` if its column may be absent)", d.header, missing)
	}
	return nil
}

func (d *recordDecoder[T]) decode(rec []string, x *T) error {
	if d.isMap {
		m := make(map[string]string, len(rec))
		for i, v := range rec {
			m[d.header[i]] = v
		}
		*x = any(m).(T)
		return nil
	}
	v := reflect.ValueOf(x).Elem()
	for i, f := range d.fields {
		col := d.columns[i]
		if col < 0 {
			continue
		}
		if err := f.parse(rec[col], v.FieldByIndex(f.index)); err != nil {
			return fmt.Errorf("column %q: %w", d.header[col], err)
		}
	}
	return nil
}

// fieldParser returns the function that sets a field of type t from a
// field's text.
func fieldParser(t reflect.Type) (func(string, reflect.Value) error, error) {
	if t == reflect.TypeFor[time.Time]() {
		return func(s string, v reflect.Value) error {
			if s == "" {
				v.SetZero()
				return nil
			}
			return v.Addr().Interface().(*time.Time).UnmarshalText([]byte(s))
		}, nil
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		return func(s string, v reflect.Value) error {
			return v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s))
		}, nil
	}
	switch t {
	case reflect.TypeFor[time.Duration]():
		return func(s string, v reflect.Value) error {
			if s == "" {
				return nil
			}
			d, err := time.ParseDuration(s)
			v.SetInt(int64(d))
			return err
		}, nil
	}
	switch t.Kind() {
	case reflect.String:
		return func(s string, v reflect.Value) error { v.SetString(s); return nil }, nil
	case reflect.Bool:
		return func(s string, v reflect.Value) error {
			if s == "" {
				return nil
			}
			b, err := strconv.ParseBool(s)
			v.SetBool(b)
			return err
		}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := t.Bits()
		return func(s string, v reflect.Value) error {
			if s == "" {
				return nil
			}
			n, err := strconv.ParseInt(s, 10, bits)
			v.SetInt(n)
			return err
		}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		bits := t.Bits()
		return func(s string, v reflect.Value) error {
			if s == "" {
				return nil
			}
			n, err := strconv.ParseUint(s, 10, bits)
			v.SetUint(n)
			return err
		}, nil
	case reflect.Float32, reflect.Float64:
		bits := t.Bits()
		return func(s string, v reflect.Value) error {
			if s == "" {
				return nil
			}
			f, err := strconv.ParseFloat(s, bits)
			v.SetFloat(f)
			return err
		}, nil
	case reflect.Pointer:
		elem, err := fieldParser(t.Elem())
		if err != nil {
			return nil, err
		}
		return func(s string, v reflect.Value) error {
			if s == "" {
				v.SetZero()
				return nil
			}
			p := reflect.New(t.Elem())
			if err := elem(s, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}, nil
	}
	return nil, fmt.Errorf("type %s cannot be read from a CSV field", t)
}
