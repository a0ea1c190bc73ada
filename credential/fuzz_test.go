package credential

import (
	"crypto/ed25519"
	"os"
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

// FuzzKeyFiles feeds arbitrary file contents to the decoders of the files
// a proxy reads at start: the token file, the Ed25519 public key (PEM) and
// the HS256 secret. Each must return an error or a usable value, never
// panic; a token file's identities are all valid, and it holds no token
// twice.
func FuzzKeyFiles(f *testing.F) {
	k := credtest.NewKeys(f)
	for _, path := range []string{credtest.TokensFile(f, "alice", "tok-alice"), k.HS256File, k.EdFile} {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("# comment\n\nalice tok-a\nbob tok-b\n"))
	f.Add([]byte("alice tok\nbob tok\n"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ts, err := parseTokens(b); err == nil {
			if len(ts) == 0 {
				t.Fatal("a token file with no token accepted")
			}
			seen := map[[32]byte]bool{}
			for _, th := range ts {
				if checkIdentity(string(th.id)) != nil {
					t.Fatalf("token file accepted identity %q", th.id)
				}
				if seen[th.sum] {
					t.Fatal("token file accepted a token twice")
				}
				seen[th.sum] = true
			}
		}
		if pk, err := parseEd25519Key(b); err == nil && len(pk) != ed25519.PublicKeySize {
			t.Fatalf("Ed25519 key of %d bytes accepted", len(pk))
		}
		if key, err := parseHS256Key(b); err == nil && len(key) < minHS256Key {
			t.Fatalf("HS256 secret of %d bytes accepted", len(key))
		}
	})
}
