package document

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llmproxy/llmproxy/host/internal/redistest"
)

func TestRedisCache(t *testing.T) {
	ctx := context.Background()
	c, err := NewRedisCache(redistest.Start(t).URL(), 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	e := &Entry{Name: "a.txt", MIMEType: MIMEText, Data: []byte("hello"), Text: "hello"}
	if err := c.Set(ctx, "k", e, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(ctx, "k")
	if err != nil || !ok || got.Text != "hello" || string(got.Data) != "hello" || got.Name != "a.txt" {
		t.Fatalf("Get = %+v, %v, %v", got, ok, err)
	}
	if _, ok, err := c.Get(ctx, "absent"); ok || err != nil {
		t.Errorf("Get(absent) = %v, %v, want a miss", ok, err)
	}
	if err := c.Set(ctx, "big", &Entry{Data: make([]byte, 2048)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := c.Get(ctx, "big"); ok {
		t.Error("an entry above the size limit was stored")
	}
	if err := c.Set(ctx, "short", e, 150*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok, _ := c.Get(ctx, "short"); ok {
		t.Error("an expired entry was served")
	}
	if err := c.client.Set(ctx, RedisKeyPrefix+"garbage", "not an entry", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Get(ctx, "garbage"); err == nil {
		t.Error("Get of a malformed entry succeeded, want an error")
	}
}

func TestNewRedisCacheBadURLHidesPassword(t *testing.T) {
	_, err := NewRedisCache("http://user:hunter2@host/0", 1)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error = %v, want one without the password", err)
	}
}
