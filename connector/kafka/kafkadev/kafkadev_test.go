package kafkadev

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartCreateProduce(t *testing.T) {
	b, err := Start(Options{Topics: map[string]int32{"a": 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if len(b.Addrs()) != 1 || !strings.HasPrefix(b.Addrs()[0], "127.0.0.1:") {
		t.Errorf("Addrs = %v, want one 127.0.0.1 address", b.Addrs())
	}
	if err := b.CreateTopic("a", 3); err != nil {
		t.Errorf("creating an existing topic with the same partitions: %v", err)
	}
	if err := b.CreateTopic("a", 2); err == nil || !strings.Contains(err.Error(), "3 partitions") {
		t.Errorf("creating an existing topic with other partitions: %v", err)
	}
	if err := b.Produce("a", Record{Key: []byte("k"), Value: []byte("v")}); err != nil {
		t.Error(err)
	}
}

func TestBadOptions(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:9092", "nohost", "127.0.0.1:99999"} {
		if b, err := Start(Options{Addr: addr}); err == nil {
			b.Close()
			t.Errorf("Start(%q) worked, want an error", addr)
		}
	}
	for _, s := range []string{"", ":3", "t:0", "t:x"} {
		if _, _, err := ParseTopic(s); err == nil {
			t.Errorf("ParseTopic(%q) worked", s)
		}
	}
	if name, n, err := ParseTopic("t:4"); name != "t" || n != 4 || err != nil {
		t.Errorf("ParseTopic(t:4) = %q %d %v", name, n, err)
	}
}
