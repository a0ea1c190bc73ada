package credential

import (
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/graftlb/graftlb/clock"
	"github.com/graftlb/graftlb/internal/credtest"
)

func mustNew(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if v == nil {
		t.Fatal("New returned no verifier for a config with sources")
	}
	return v
}

// refused checks that cred is refused with reason.
func refused(t *testing.T, v *Verifier, cred, reason string) {
	t.Helper()
	id, err := v.Verify([]byte(cred))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify(%.40q) = %q, %v; want an *Error %q", cred, id, err, reason)
	}
	if e.Reason != reason {
		t.Fatalf("Verify(%.40q) refused with %q (%v); want %q", cred, e.Reason, err, reason)
	}
}

func accepted(t *testing.T, v *Verifier, cred string, want Identity) {
	t.Helper()
	id, err := v.Verify([]byte(cred))
	if err != nil || id != want {
		t.Fatalf("Verify(%.40q) = %q, %v; want %q", cred, id, err, want)
	}
}

func TestNothingConfiguredIsOff(t *testing.T) {
	v, err := New(Config{})
	if v != nil || err != nil {
		t.Fatalf("New(zero) = %v, %v; want nil, nil", v, err)
	}
	if _, err := New(Config{JWTIssuer: "x"}); err == nil {
		t.Fatal("an issuer without a JWT key was accepted")
	}
}

func TestStaticTokens(t *testing.T) {
	f := credtest.TokensFile(t, "alice", "tok-alice-1", "bob", "tok-bob", "alice", "tok-alice-2")
	v := mustNew(t, Config{TokensFile: f})
	accepted(t, v, "tok-alice-1", "alice")
	accepted(t, v, "tok-alice-2", "alice")
	accepted(t, v, "tok-bob", "bob")
	refused(t, v, "", reasonMissing)
	refused(t, v, "tok-bob ", reasonUnknown)
	refused(t, v, "tok-alic", reasonUnknown)
	refused(t, v, "alice", reasonUnknown)
	refused(t, v, strings.Repeat("x", MaxSize+1), reasonTooLong)
	for _, tk := range v.tokens {
		if strings.Contains(string(tk.sum[:]), "tok-") {
			t.Fatal("a token is stored in clear")
		}
	}
}

func TestTokenFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"one field":      "alice\n",
		"three fields":   "alice tok extra\n",
		"empty":          "# nothing\n\n",
		"same token":     "alice tok\nbob tok\n",
		"control char":   "al\x01ice tok\n",
		"long identity":  strings.Repeat("a", MaxIdentity+1) + " tok\n",
		"invalid utf8 i": "\xff tok\n",
	} {
		p := credtest.WriteFile(t, dir, strings.ReplaceAll(name, " ", "_"), content)
		if _, err := New(Config{TokensFile: p}); err == nil {
			t.Errorf("%s: token file %q accepted", name, content)
		}
	}
	if _, err := New(Config{TokensFile: dir + "/missing"}); err == nil {
		t.Error("a missing token file was accepted")
	}
	short := credtest.WriteFile(t, dir, "short.key", "too short\n")
	if _, err := New(Config{JWTHS256KeyFile: short}); err == nil {
		t.Error("a short HS256 secret was accepted")
	}
	notPEM := credtest.WriteFile(t, dir, "bad.pem", "not a key")
	if _, err := New(Config{JWTEd25519KeyFile: notPEM}); err == nil {
		t.Error("a non-PEM Ed25519 key was accepted")
	}
}

func TestJWT(t *testing.T) {
	k := credtest.NewKeys(t)
	clk := clock.NewFake()
	now := clk.Now()
	v := mustNew(t, Config{JWTHS256KeyFile: k.HS256File, JWTEd25519KeyFile: k.EdFile, Clock: clk, Leeway: 5 * time.Second})

	accepted(t, v, k.HS256JWT(t, credtest.Claims("alice", now, time.Minute)), "alice")
	accepted(t, v, k.EdJWT(t, credtest.Claims("bob", now, time.Minute)), "bob")

	expiring := k.EdJWT(t, credtest.Claims("carol", now, time.Minute))
	clk.Advance(time.Minute + 4*time.Second) // within the leeway
	accepted(t, v, expiring, "carol")
	clk.Advance(2 * time.Second)
	refused(t, v, expiring, reasonExpired)

	now = clk.Now()
	future := credtest.Claims("dave", now, time.Hour)
	future.NotBefore = jwt.NewNumericDate(now.Add(time.Minute))
	refused(t, v, k.HS256JWT(t, future), reasonNotYet)

	noExp := credtest.Claims("erin", now, time.Hour)
	noExp.ExpiresAt = nil
	refused(t, v, k.HS256JWT(t, noExp), reasonClaims)

	refused(t, v, k.HS256JWT(t, credtest.Claims("", now, time.Hour)), reasonSubject)

	// A signature by another key.
	other := credtest.NewKeys(t)
	refused(t, v, other.HS256JWT(t, credtest.Claims("alice", now, time.Hour)), reasonUnknown)
	refused(t, v, other.EdJWT(t, credtest.Claims("alice", now, time.Hour)), reasonUnknown)

	// A tampered payload.
	good := k.HS256JWT(t, credtest.Claims("alice", now, time.Hour))
	parts := strings.Split(good, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"mallory","exp":9999999999}`))
	refused(t, v, strings.Join(parts, "."), reasonUnknown)
}

func TestJWTAlgorithmsRestricted(t *testing.T) {
	k := credtest.NewKeys(t)
	now := time.Now()
	claims := credtest.Claims("mallory", now, time.Hour)

	// alg none.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	both := mustNew(t, Config{JWTHS256KeyFile: k.HS256File, JWTEd25519KeyFile: k.EdFile})
	refused(t, both, none, reasonUnknown)

	// HS256 signed with the Ed25519 public key (PEM or raw) as the secret:
	// the confusion attack on a verifier that hands the key over by file.
	edOnly := mustNew(t, Config{JWTEd25519KeyFile: k.EdFile})
	for _, secret := range [][]byte{[]byte(k.EdPub), mustRead(t, k.EdFile)} {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, edOnly, s, reasonUnknown)
		refused(t, both, s, reasonUnknown)
	}
	// HS384/HS512 with the right secret: only HS256 is accepted.
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		s, err := jwt.NewWithClaims(m, claims).SignedString(k.HS256)
		if err != nil {
			t.Fatal(err)
		}
		refused(t, both, s, reasonUnknown)
	}
	// An EdDSA token where only HS256 is configured, and the reverse.
	hsOnly := mustNew(t, Config{JWTHS256KeyFile: k.HS256File})
	refused(t, hsOnly, k.EdJWT(t, claims), reasonUnknown)
	refused(t, edOnly, k.HS256JWT(t, claims), reasonUnknown)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWTIssuerAudience(t *testing.T) {
	k := credtest.NewKeys(t)
	now := time.Now()
	v := mustNew(t, Config{JWTHS256KeyFile: k.HS256File, JWTIssuer: "https://idp.example", JWTAudience: "graftlb"})
	c := credtest.Claims("alice", now, time.Hour)
	refused(t, v, k.HS256JWT(t, c), reasonClaims)
	c.Issuer = "https://idp.example"
	refused(t, v, k.HS256JWT(t, c), reasonClaims)
	c.Audience = jwt.ClaimStrings{"other", "graftlb"}
	accepted(t, v, k.HS256JWT(t, c), "alice")
	c.Issuer = "https://evil.example"
	refused(t, v, k.HS256JWT(t, c), reasonClaims)
}

func TestTokensAndJWTTogether(t *testing.T) {
	k := credtest.NewKeys(t)
	v := mustNew(t, Config{TokensFile: credtest.TokensFile(t, "svc", "static-secret"), JWTHS256KeyFile: k.HS256File})
	accepted(t, v, "static-secret", "svc")
	accepted(t, v, k.HS256JWT(t, credtest.Claims("alice", time.Now(), time.Hour)), "alice")
	refused(t, v, "a.b.c", reasonUnknown)
}
