package cart

import (
	"errors"
	"testing"
)

// TestStateChecks: a cart's answers pass only when they show exactly the
// state the session built, from a gateway its Owner accepts.
func TestStateChecks(t *testing.T) {
	gw1 := func(gw string) bool { return gw == "gw1" }
	s := State{}
	s, err := s.Add(Added{Items: 1, Total: 150, Gateway: "gw1"}, "apple", 150, gw1)
	if err != nil {
		t.Fatal(err)
	}
	s, err = s.Add(Added{Items: 2, Total: 350, Gateway: "gw1"}, "bread", 200, gw1)
	if err != nil || s.Total != 350 || len(s.Items) != 2 || s.Items[1] != "bread" {
		t.Fatalf("after two items: %+v, %v", s, err)
	}
	bad := []struct {
		name string
		err  error
	}{
		{"AddItem from another gateway", func() error { _, err := s.Add(Added{Items: 3, Total: 351, Gateway: "gw2"}, "x", 1, gw1); return err }()},
		{"AddItem on another cart", func() error { _, err := s.Add(Added{Items: 1, Total: 1, Gateway: "gw1"}, "x", 1, gw1); return err }()},
		{"Total off", s.CheckTotal(TotalResult{Total: 349, Gateway: "gw1"}, gw1)},
		{"Total from another gateway", s.CheckTotal(TotalResult{Total: 350, Gateway: "gw2"}, gw1)},
		{"Total naming no gateway", s.CheckTotal(TotalResult{Total: 350}, nil)},
		{"Items reordered", s.CheckItems(ItemsResult{Items: []string{"bread", "apple"}, Gateway: "gw1"}, gw1)},
		{"Items missing one", s.CheckItems(ItemsResult{Items: []string{"apple"}, Gateway: "gw1"}, gw1)},
	}
	for _, b := range bad {
		if !errors.Is(b.err, ErrMisrouted) {
			t.Errorf("%s: %v, want ErrMisrouted", b.name, b.err)
		}
	}
	if err := s.CheckTotal(TotalResult{Total: 350, Gateway: "gw3"}, nil); err != nil {
		t.Errorf("a nil Owner refused gw3: %v", err)
	}
	answers := map[string]any{"Total": TotalResult{Total: 350, Gateway: "gw1"},
		"Items": ItemsResult{Items: []string{"apple", "bread"}, Gateway: "gw1"}}
	read := func(method string, v any) error {
		switch p := v.(type) {
		case *TotalResult:
			*p = answers[method].(TotalResult)
		case *ItemsResult:
			*p = answers[method].(ItemsResult)
		}
		return nil
	}
	if gw, err := s.Verify(read, gw1); err != nil || gw != "gw1" {
		t.Fatalf("Verify = %q, %v", gw, err)
	}
	answers["Items"] = ItemsResult{Items: []string{"apple"}, Gateway: "gw1"}
	if _, err := s.Verify(read, gw1); !errors.Is(err, ErrMisrouted) {
		t.Fatalf("Verify of a cart missing an item: %v", err)
	}
	callErr := errors.New("call failed")
	if _, err := s.Verify(func(string, any) error { return callErr }, gw1); err != callErr {
		t.Fatalf("Verify passed on %v as %v", callErr, err)
	}
}
