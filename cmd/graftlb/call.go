package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/graftlb/graftlb/client"
	"github.com/graftlb/graftlb/protocol"
)

func runCall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "tcp://127.0.0.1:8990", "gateway or proxy address: tcp://host:port, tls://host:port, ws://host:port/ws or wss://host:port/ws")
	stateless := fs.Bool("stateless", false, "mark the call STATELESS (any gateway may serve it)")
	idempotent := fs.Bool("idempotent", false, "mark the call IDEMPOTENT (a proxy may retry it)")
	timeout := fs.Duration("timeout", 10*time.Second, "call deadline")
	session := fs.String("session", "", "resume this session id (32 hex digits) instead of starting one")
	var cf credentialFlags
	cf.register(fs)
	var ct clientTLSFlags
	ct.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: graftlb call [flags] module@version.Type.Method ['[json args]']")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return 2
	}
	t, err := protocol.ParseTarget(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "graftlb call:", err)
		return 2
	}
	var callArgs []any
	if fs.NArg() == 2 {
		if callArgs, err = jsonArgs(fs.Arg(1)); err != nil {
			fmt.Fprintln(stderr, "graftlb call: arguments:", err)
			return 2
		}
	}
	opts := client.Options{PingInterval: -1}
	if opts.Credential, err = cf.credential(); err != nil {
		fmt.Fprintln(stderr, "graftlb call:", err)
		return 2
	}
	if opts.TLS, err = ct.config(); err != nil {
		fmt.Fprintln(stderr, "graftlb call: --tls-ca:", err)
		return 2
	}
	if *session != "" {
		if opts.Session, err = protocol.ParseSessionID(*session); err != nil {
			fmt.Fprintln(stderr, "graftlb call:", err)
			return 2
		}
		opts.Resume = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := client.Dial(ctx, *target, opts)
	if err != nil {
		fmt.Fprintln(stderr, "graftlb call:", err)
		return 1
	}
	defer c.Close()
	res, err := c.Session().Do(ctx, client.Request{Target: t, Args: callArgs, Stateless: *stateless, Idempotent: *idempotent})
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			fmt.Fprintf(stderr, "graftlb call: %s\n", pe)
		} else {
			fmt.Fprintln(stderr, "graftlb call:", err)
		}
		return 1
	}
	v, err := res.Value()
	if err != nil {
		fmt.Fprintln(stderr, "graftlb call: result:", err)
		return 1
	}
	out, err := json.MarshalIndent(jsonable(v), "", "  ")
	if err != nil {
		fmt.Fprintln(stderr, "graftlb call: result:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}

// jsonArgs parses a JSON array of arguments. Integral numbers become int64
// so that they decode into integer parameters.
func jsonArgs(s string) ([]any, error) {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("trailing data after the JSON array")
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, errors.New(`must be a JSON array, e.g. '["o-1", 2]'`)
	}
	return fromJSON(arr).([]any), nil
}

func fromJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = fromJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = fromJSON(x[k])
		}
		return x
	}
	return v
}

// jsonable turns decoded CBOR into something encoding/json prints well.
func jsonable(v any) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = jsonable(x[k])
		}
		return x
	case []byte:
		if bytes.IndexFunc(x, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) < 0 {
			return string(x)
		}
		return x
	}
	return v
}
