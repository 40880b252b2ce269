package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/runnel-dev/runnel/connector/kafka/kafkadev"
)

// kafkaServe runs the development broker until SIGINT or SIGTERM.
func kafkaServe(args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("runnel kafka serve", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:9092", "host:port to listen on (127.0.0.1 only; port 0 picks one)")
	topics := fs.StringArray("topic", nil, "create a topic, name:partitions (repeatable)")
	dataDir := fs.String("data-dir", "", "keep the broker's data in this directory (default: in memory)")
	minSession := fs.Duration("group-min-session-timeout", 6*time.Second, "shortest session timeout a group member may ask for (Kafka's group.min.session.timeout.ms)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			fmt.Fprint(stdout, usage)
			return err
		}
		return usageErr("kafka serve: %v", err)
	}
	if fs.NArg() > 0 {
		return usageErr("kafka serve takes no arguments, got %q", fs.Args())
	}
	if *minSession <= 0 {
		return usageErr("--group-min-session-timeout: %v is not a positive duration", *minSession)
	}
	opts := kafkadev.Options{Addr: *addr, Topics: map[string]int32{}, DataDir: *dataDir, GroupMinSessionTimeout: *minSession}
	for _, t := range *topics {
		name, n, err := kafkadev.ParseTopic(t)
		if err != nil {
			return usageErr("--topic: %v", err)
		}
		opts.Topics[name] = n
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	b, err := kafkadev.Start(opts)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "kafka dev broker listening on %s (Ctrl-C stops it)\n", strings.Join(b.Addrs(), ","))
	<-sig
	return nil
}
