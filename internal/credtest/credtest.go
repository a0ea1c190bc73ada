// Package credtest makes credentials for tests: token files, HS256 and
// Ed25519 key files, and JWTs signed with them. Keys are made per test;
// nothing here is a fake of the checking side.
package credtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys are one test's signing keys and the files that hold the verifying
// side: HS256File the HS256 secret, EdFile the Ed25519 public key (PEM).
type Keys struct {
	HS256     []byte
	EdPriv    ed25519.PrivateKey
	EdPub     ed25519.PublicKey
	HS256File string
	EdFile    string
}

// NewKeys makes fresh keys and writes their files into t.TempDir().
func NewKeys(t testing.TB) *Keys {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	// Text, as operators write it: the file's trailing white space is not
	// part of the secret.
	k := &Keys{HS256: []byte(hex.EncodeToString(secret))}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k.EdPub, k.EdPriv = pub, priv
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k.HS256File = WriteFile(t, dir, "hs256.key", string(k.HS256)+"\n")
	k.EdFile = WriteFile(t, dir, "ed25519.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	return k
}

// WriteFile writes content to dir/name and returns its path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TokensFile writes a static token file of identity/token pairs (in
// order: identity, token, identity, token, ...) and returns its path.
func TokensFile(t testing.TB, pairs ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# identity token\n\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		b.WriteString(pairs[i] + " " + pairs[i+1] + "\n")
	}
	return WriteFile(t, t.TempDir(), "tokens", b.String())
}

// Claims are those of a JWT for subject sub, valid from an hour before
// now until ttl after now.
func Claims(sub string, now time.Time, ttl time.Duration) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Subject:   sub,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Hour)),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
}

// HS256JWT signs claims with the HS256 secret.
func (k *Keys) HS256JWT(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodHS256, k.HS256, claims)
}

// EdJWT signs claims with the Ed25519 private key (alg EdDSA).
func (k *Keys) EdJWT(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	return Sign(t, jwt.SigningMethodEdDSA, k.EdPriv, claims)
}

// Sign signs claims by method with key: any JWT, good or bad.
func Sign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
