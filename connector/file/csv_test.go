package file_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runnel-dev/runnel"
	"github.com/runnel-dev/runnel/connector/file"
	"github.com/runnel-dev/runnel/op"
	"github.com/runnel-dev/runnel/runneltest"
)

// readAs runs src into a collecting sink.
func readAs[T any](t *testing.T, src runnel.Source[T], cfg runnel.Config) ([]T, error) {
	t.Helper()
	flow := runnel.NewDataflow("read")
	sink := runneltest.NewSink[T]()
	op.Output("out", op.Input("inp", flow, src), sink)
	err := runnel.Run(t.Context(), flow, cfg)
	return sink.Items(), err
}

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("unknown level")
	}
	return nil
}

type reading struct {
	Sensor  string        `csv:"sensor"`
	Value   float64       // matched to "value", ignoring case
	Count   int64         `csv:"n"`
	OK      bool          `csv:"ok"`
	Every   time.Duration `csv:"every"`
	At      time.Time     `csv:"at"`
	Limit   *uint16       `csv:"limit"`
	Level   level         `csv:"level"`
	Note    string        `csv:"note,optional"`
	Ignored string        `csv:"-"`
	private int
}

func TestCSVDecode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	writeFile(t, path, "at,sensor,VALUE,n,ok,every,limit,level,extra\n"+
		"2024-01-02T03:04:05Z,s1,1.5,-7,true,1m30s,9,low,x\r\n"+
		",\"s2, quoted\",,,,,,high,\n")
	got, err := readAs(t, file.NewCSVSource[reading](path), runneltest.Config(1, time.Hour, ""))
	if err != nil {
		t.Fatal(err)
	}
	nine := uint16(9)
	want := []reading{
		{Sensor: "s1", Value: 1.5, Count: -7, OK: true, Every: 90 * time.Second,
			At: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Limit: &nine, Level: 1},
		{Sensor: "s2, quoted", Level: 2},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(reading{})); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

type Base struct {
	ID int `csv:"id"`
}

type Extra struct{ Skipped string }

// TestCSVEmbeddedAndBOM: fields promoted from an embedded struct are
// decoded (not those behind an embedded pointer), and a byte order mark
// before the header is not part of the first column's name.
func TestCSVEmbeddedAndBOM(t *testing.T) {
	type row struct {
		Base
		*Extra
		Name string `csv:"name"`
	}
	path := filepath.Join(t.TempDir(), "r.csv")
	writeFile(t, path, "\ufeffid,name\n7,x\n")
	got, err := readAs(t, file.NewCSVSource[row](path), runneltest.Config(1, time.Hour, ""))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]row{{Base: Base{ID: 7}, Name: "x"}}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestCSVMapAndOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.csv")
	writeFile(t, path, "# a comment\na; b\n1;  two\n")
	got, err := readAs(t, file.NewCSVSource[map[string]string](path, file.Comma(';'), file.Comment('#'), file.TrimLeadingSpace()),
		runneltest.Config(1, time.Hour, ""))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]map[string]string{{"a": "1", "b": "two"}}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestCSVResume continues a grown CSV file after its header and the
// records already read, with the header read again.
func TestCSVResume(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "r.csv")
	writeFile(t, path, "sensor,value\na,1\nb,2\n")
	type row struct {
		Sensor string
		Value  int
	}
	cfg := runneltest.Config(1, time.Hour, db)
	got, err := readAs(t, file.NewCSVSource[row](path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]row{{"a", 1}, {"b", 2}}, got); diff != "" {
		t.Fatalf("first run (-want +got):\n%s", diff)
	}
	appendFile(t, path, "c,3\n")
	got, err = readAs(t, file.NewCSVSource[row](path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]row{{"c", 3}}, got); diff != "" {
		t.Fatalf("resumed run (-want +got):\n%s", diff)
	}
	// A malformed record after a resume names its byte offset.
	appendFile(t, path, "d,\"4\n")
	_, err = readAs(t, file.NewCSVSource[row](path), cfg)
	if err == nil || !strings.Contains(err.Error(), path+" at offset 25") {
		t.Fatalf("err = %v, want a parse error naming %s at offset 25", err, path)
	}
	// The header alone, then an empty file: a file that shrank.
	writeFile(t, path, "sensor,value\n")
	_, err = readAs(t, file.NewCSVSource[row](path), cfg)
	if !errors.Is(err, file.ErrPastEnd) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "--drop-state read.inp") {
		t.Fatalf("shrunk file: err = %v, want ErrPastEnd naming %s and --drop-state", err, path)
	}
	writeFile(t, path, "")
	_, err = readAs(t, file.NewCSVSource[row](path), cfg)
	if !errors.Is(err, file.ErrPastEnd) {
		t.Fatalf("emptied file: err = %v, want ErrPastEnd", err)
	}
}

func TestCSVErrors(t *testing.T) {
	type row struct {
		Name string `csv:"name"`
		Age  int    `csv:"age"`
	}
	dir := t.TempDir()
	cfg := runneltest.Config(1, time.Hour, "")
	for _, tc := range []struct {
		name, content string
		opts          []file.CSVOpt
		want          []string // substrings of the error, after the path
	}{
		{"bad quote", "name,age\nann,3\n\"bo\"b,4\n", nil, []string{"at offset 15 (line 3, column 4)", `extraneous or missing " in quoted-field`}},
		{"field count", "name,age\nann,3\nbob\n", nil, []string{"at offset 15 (line 3, column 1)", "wrong number of fields"}},
		{"field does not parse", "name,age\nann,3\nbob,4x\n", nil, []string{"at offset 15 (line 3)", `column "age"`, `parsing "4x"`}},
		{"missing column", "name,years\nann,3\n", nil, []string{`no column ["age"]`}},
		{"duplicate column", "name,age,name\nann,3,x\n", nil, []string{`column "name" appears twice`}},
		{"record too long", "name,age\nann,3\n" + strings.Repeat("b", 40) + ",4\n", []file.CSVOpt{file.MaxLineLength(20)}, []string{"at offset 15", "record longer than 20 bytes"}},
		{"header too long", strings.Repeat("n", 30) + ",name,age\n", []file.CSVOpt{file.MaxLineLength(20)}, []string{"at offset 0", "longer than 20 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".csv")
			writeFile(t, path, tc.content)
			got, err := readAs(t, file.NewCSVSource[row](path, tc.opts...), cfg)
			if err == nil {
				t.Fatalf("no error; read %v", got)
			}
			for _, w := range append([]string{path}, tc.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
	_, err := readAs(t, file.NewCSVSource[int](filepath.Join(dir, "bad_quote.csv")), cfg)
	if err == nil || !strings.Contains(err.Error(), "want a struct or map[string]string") {
		t.Errorf("int records: err = %v", err)
	}
	type unsupported struct{ C chan int }
	_, err = readAs(t, file.NewCSVSource[unsupported](filepath.Join(dir, "bad_quote.csv")), cfg)
	if err == nil || !strings.Contains(err.Error(), "field C: type chan int cannot be read") {
		t.Errorf("chan field: err = %v", err)
	}
	missing := filepath.Join(dir, "missing")
	_, err = readAs(t, file.NewCSVDirSource[row](missing, "*.csv"), cfg)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing dir: err = %v, want a not-exist error naming %s", err, missing)
	}
	_, err = readAs(t, file.NewCSVSource[row](filepath.Join(dir, "missing.csv")), cfg)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want a not-exist error", err)
	}
}

func TestCSVEmptyFileThenHeader(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "r.csv")
	writeFile(t, path, "")
	cfg := runneltest.Config(1, time.Hour, db)
	got, err := readAs(t, file.NewCSVSource[map[string]string](path), cfg)
	if err != nil || len(got) != 0 {
		t.Fatalf("empty file: got %v, %v", got, err)
	}
	writeFile(t, path, "a\n1\n")
	got, err = readAs(t, file.NewCSVSource[map[string]string](path), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]map[string]string{{"a": "1"}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSourceMaxLineLength(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "in.txt")
	// Exactly 10 bytes passes (the \r\n does not count); 11 does not, nor
	// does a line far beyond the read buffer.
	writeFile(t, path, "0123456789\r\nok\n01234567890\n")
	got, err := readAll(t, file.NewSource(path, file.MaxLineLength(10), file.BatchSize(1)), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, file.ErrLineTooLong) || !strings.Contains(err.Error(), path+" at offset 15") {
		t.Fatalf("err = %v, want ErrLineTooLong naming %s at offset 15", err, path)
	}
	if diff := cmp.Diff([]string{"0123456789", "ok"}, got); diff != "" {
		t.Errorf("lines before the long one (-want +got):\n%s", diff)
	}
	huge := filepath.Join(dir, "huge.txt")
	writeFile(t, huge, "a\n"+strings.Repeat("x", 1<<20))
	_, err = readAll(t, file.NewDirSource(dir, "huge.txt", file.MaxLineLength(1000)), runneltest.Config(1, time.Hour, ""))
	if !errors.Is(err, file.ErrLineTooLong) || !strings.Contains(err.Error(), huge+" at offset 2") {
		t.Fatalf("err = %v, want ErrLineTooLong naming %s at offset 2", err, huge)
	}
	_, err = readAll(t, file.NewSource(path, file.MaxLineLength(0)), runneltest.Config(1, time.Hour, ""))
	if err == nil || !strings.Contains(err.Error(), "maximum line length 0") {
		t.Fatalf("err = %v, want a bad option error", err)
	}
}

// TestSourceLineTooLongResumes stops at an over-long line with recovery;
// once the line is shortened, the next run continues at that line.
func TestSourceLineTooLongResumes(t *testing.T) {
	db := initDir(t, 1)
	path := filepath.Join(t.TempDir(), "in.txt")
	writeFile(t, path, "a\nbb\n"+strings.Repeat("c", 50)+"\nd\n")
	cfg := runneltest.Config(1, time.Millisecond, db)
	_, err := readAll(t, file.NewSource(path, file.MaxLineLength(10), file.BatchSize(1)), cfg)
	if !errors.Is(err, file.ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	writeFile(t, path, "a\nbb\nc\nd\n")
	got, err := readAll(t, file.NewSource(path, file.MaxLineLength(10), file.BatchSize(1)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The epochs of "a" and "bb" may or may not have committed before
	// the failure; what was not committed is read again, nothing is
	// skipped.
	for _, tail := range [][]string{{"a", "bb", "c", "d"}, {"bb", "c", "d"}, {"c", "d"}} {
		if cmp.Equal(tail, got) {
			return
		}
	}
	t.Errorf("resumed run read %q, want a tail of [a bb c d] that includes c", got)
}
