package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// openTxn starts a transactional producer on id, writes one record in a
// transaction, flushes it and returns the producer and the stored Txn, as
// PreCommit would.
func openTxn(t *testing.T, brokers []string, id string, timeout time.Duration) (*kgo.Client, Txn) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(id), kgo.DefaultProduceTopic("out"), kgo.TransactionTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, ep, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cl, Txn{ID: id, ProducerID: pid, ProducerEpoch: ep, Epoch: 7}
}

// TestFinishTxn covers every answer a resumed commit can get: the stored
// transaction is still open (committed now), it was committed already
// (the same answer again), it was committed and its producer went on to
// the next transaction (recognised from the transaction's state), and it
// was aborted by the transaction timeout (a loud "exactly-once violated").
func TestFinishTxn(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()

	t.Run("open", func(t *testing.T) {
		_, txn := openTxn(t, brokers, "open", time.Minute)
		if err := finishTxn(ctx, admin, txn); err != nil {
			t.Fatal(err)
		}
		if err := finishTxn(ctx, admin, txn); err != nil {
			t.Errorf("a repeated commit: %v", err)
		}
	})
	t.Run("committed-then-next", func(t *testing.T) {
		cl, txn := openTxn(t, brokers, "next", time.Minute)
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("y")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := finishTxn(ctx, admin, txn); err != nil {
			t.Errorf("the stored transaction was committed and its producer is in the next one: %v", err)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		if err := finishTxn(ctx, admin, txn); err != nil {
			t.Errorf("two transactions later: %v", err)
		}
	})
	t.Run("timed-out", func(t *testing.T) {
		_, txn := openTxn(t, brokers, "timeout", time.Second)
		deadline := time.Now().Add(10 * time.Second)
		for {
			d, err := describeState(ctx, admin, txn.ID)
			if err != nil {
				t.Fatal(err)
			}
			if d != "Ongoing" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		err := finishTxn(ctx, admin, txn)
		if err == nil || !strings.Contains(err.Error(), "exactly-once violated") || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("commit after the broker aborted the transaction: %v, want a loud exactly-once violation", err)
		}
	})
}

func describeState(ctx context.Context, cl *kgo.Client, id string) (string, error) {
	ok, err := txnIDExists(ctx, cl, id)
	if err != nil || !ok {
		return "", err
	}
	return describeTxnState(ctx, cl, id)
}
