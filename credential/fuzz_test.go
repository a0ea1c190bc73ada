package credential

import (
	"testing"
	"time"

	"github.com/graftlb/graftlb/internal/credtest"
)

// FuzzVerify feeds arbitrary credentials to a verifier that takes static
// tokens and both kinds of JWT: it must refuse them with an *Error (or
// accept a valid one), never panic, and never accept an identity that is
// not one it was configured with or a valid subject.
func FuzzVerify(f *testing.F) {
	k := credtest.NewKeys(f)
	now := time.Now()
	f.Add([]byte("tok-alice"))
	f.Add([]byte(k.HS256JWT(f, credtest.Claims("alice", now, time.Hour))))
	f.Add([]byte(k.EdJWT(f, credtest.Claims("bob", now, time.Hour))))
	f.Add([]byte("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(".."))
	v, err := New(Config{TokensFile: credtest.TokensFile(f, "alice", "tok-alice"),
		JWTHS256KeyFile: k.HS256File, JWTEd25519KeyFile: k.EdFile})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cred []byte) {
		id, err := v.Verify(cred)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Verify returned %T %v, not an *Error", err, err)
			}
			if id != "" {
				t.Fatalf("Verify refused %q but returned identity %q", cred, id)
			}
			return
		}
		if checkIdentity(string(id)) != nil {
			t.Fatalf("Verify accepted identity %q", id)
		}
	})
}
