// Package credential checks the credential a client presents in its HELLO
// (protocol.Hello.Credential, opaque bytes) and says whose it is: a
// Verifier returns the Identity of a good credential, or an error whose
// Reason may be shown to the client.
//
// Two kinds of credential are understood, either or both at once:
//
//   - static tokens from a file (Config.TokensFile): one "identity token"
//     pair per line, # starting a comment. Only SHA-256 hashes of the
//     tokens are kept, and a presented token is compared with every one of
//     them in constant time.
//   - JSON Web Tokens signed with HS256 (a secret key file) or EdDSA
//     (Ed25519, a PEM public key file): the identity is the "sub" claim;
//     "exp" is required and checked, "nbf" when present, both on the
//     Config's clock with a small leeway; "iss" and "aud" when the Config
//     names them. Only the algorithms whose key is configured are accepted
//     (never "none", never an HS256 token checked with the Ed25519 key or
//     the other way round).
//
// A credential is tried as a static token first, then as a JWT. Bad input
// of any shape is an error, never a panic, and no credential longer than
// MaxSize is parsed.
package credential

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/graftlb/graftlb/clock"
)

// Identity names who presented a credential: a static token's identity or
// a JWT's subject.
type Identity string

// MaxSize is the longest credential a Verifier parses (16 KiB); longer
// ones are refused unread. A HELLO frame is bounded anyway (the frame
// limit); this bounds the work of one handshake.
const MaxSize = 16 << 10

// MaxIdentity is the longest identity accepted (256 bytes), from a token
// file or a JWT's subject.
const MaxIdentity = 256

// DefaultLeeway is the clock skew allowed on a JWT's exp and nbf.
const DefaultLeeway = 30 * time.Second

// minHS256Key is the shortest HS256 secret accepted: RFC 7518 section
// 3.2 asks for a key at least as long as the hash output.
const minHS256Key = 32

// Config says which credentials a Verifier accepts. Files are read once,
// by New.
type Config struct {
	// TokensFile holds static tokens: one "identity token" pair per line
	// (separated by spaces or tabs), blank lines and lines starting with #
	// ignored. A token names one identity; an identity may have several
	// tokens.
	TokensFile string `json:"auth_tokens" yaml:"auth_tokens"`
	// JWTHS256KeyFile holds the HS256 secret (the file's bytes, trailing
	// white space removed; at least 32 bytes).
	JWTHS256KeyFile string `json:"auth_jwt_hs256_key" yaml:"auth_jwt_hs256_key"`
	// JWTEd25519KeyFile holds an Ed25519 public key in PEM (PKIX, "PUBLIC
	// KEY"), for EdDSA JWTs.
	JWTEd25519KeyFile string `json:"auth_jwt_ed25519_key" yaml:"auth_jwt_ed25519_key"`
	// JWTIssuer and JWTAudience, when set, are required of a JWT's "iss"
	// and "aud" claims.
	JWTIssuer   string `json:"auth_jwt_issuer" yaml:"auth_jwt_issuer"`
	JWTAudience string `json:"auth_jwt_audience" yaml:"auth_jwt_audience"`
	// Leeway is the clock skew allowed on exp and nbf (default
	// DefaultLeeway; negative: none).
	Leeway time.Duration `json:"auth_jwt_leeway" yaml:"auth_jwt_leeway"`
	// Clock tells the time exp and nbf are checked against (default: real).
	Clock clock.Clock `json:"-" yaml:"-"`
}

// Enabled reports whether the Config names any credential source: without
// one there is nothing to check.
func (c Config) Enabled() bool {
	return c.TokensFile != "" || c.JWTHS256KeyFile != "" || c.JWTEd25519KeyFile != ""
}

// Error is why a credential was refused. Reason is meant for the client
// (the message of its ERROR UNAUTHENTICATED) and names no secret; Err,
// when set, is the detail, for the log.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

func (e *Error) Unwrap() error { return e.Err }

// Verifier checks credentials. It is safe for concurrent use.
type Verifier struct {
	tokens []tokenHash
	hsKey  []byte
	edKey  ed25519.PublicKey
	parser *jwt.Parser
}

type tokenHash struct {
	sum [sha256.Size]byte
	id  Identity
}

// New reads the files cfg names and returns their Verifier; it returns nil
// and no error when cfg names none (credentials off).
func New(cfg Config) (*Verifier, error) {
	if (cfg.JWTIssuer != "" || cfg.JWTAudience != "") && cfg.JWTHS256KeyFile == "" && cfg.JWTEd25519KeyFile == "" {
		return nil, errors.New("credential: a JWT issuer or audience is set but no JWT key file")
	}
	if !cfg.Enabled() {
		return nil, nil
	}
	v := &Verifier{}
	var methods []string
	err := load("tokens", cfg.TokensFile, func(b []byte) (err error) {
		v.tokens, err = parseTokens(b)
		return err
	})
	if err == nil {
		err = load("HS256 key", cfg.JWTHS256KeyFile, func(b []byte) (err error) {
			v.hsKey, err = parseHS256Key(b)
			methods = append(methods, jwt.SigningMethodHS256.Alg())
			return err
		})
	}
	if err == nil {
		err = load("Ed25519 key", cfg.JWTEd25519KeyFile, func(b []byte) (err error) {
			v.edKey, err = parseEd25519Key(b)
			methods = append(methods, jwt.SigningMethodEdDSA.Alg())
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	if len(methods) == 0 {
		return v, nil
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	now := clock.OrReal(cfg.Clock).Now
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
	}
	if cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.JWTIssuer))
	}
	if cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(cfg.JWTAudience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// parseTokens reads a token file.
func parseTokens(b []byte) ([]tokenHash, error) {
	var out []tokenHash
	seen := make(map[[sha256.Size]byte]int)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), MaxSize+MaxIdentity+64)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"identity token\", got %d fields", n, len(fields))
		}
		id, tok := fields[0], fields[1]
		if err := checkIdentity(id); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(tok) > MaxSize {
			return nil, fmt.Errorf("line %d: token longer than %d bytes", n, MaxSize)
		}
		sum := sha256.Sum256([]byte(tok))
		if prev, dup := seen[sum]; dup {
			return nil, fmt.Errorf("line %d: the token of line %d again (a token names one identity)", n, prev)
		}
		seen[sum] = n
		out = append(out, tokenHash{sum: sum, id: Identity(id)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no tokens")
	}
	return out, nil
}

// load reads the file at path (none: nothing to do) and hands its bytes
// to parse.
func load(what, path string, parse func([]byte) error) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		err = parse(b)
	}
	if err != nil {
		return fmt.Errorf("credential: %s %s: %w", what, path, err)
	}
	return nil
}

func parseEd25519Key(b []byte) (ed25519.PublicKey, error) {
	k, err := jwt.ParseEdPublicKeyFromPEM(b)
	if err != nil {
		return nil, err
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok || len(pk) != ed25519.PublicKeySize {
		return nil, errors.New("not an Ed25519 public key")
	}
	return pk, nil
}

func parseHS256Key(b []byte) ([]byte, error) {
	k := bytes.TrimRight(b, " \t\r\n")
	if len(k) < minHS256Key {
		return nil, fmt.Errorf("secret is %d bytes; at least %d are needed", len(k), minHS256Key)
	}
	return bytes.Clone(k), nil
}

func checkIdentity(id string) error {
	switch {
	case id == "":
		return errors.New("empty identity")
	case len(id) > MaxIdentity:
		return fmt.Errorf("identity longer than %d bytes", MaxIdentity)
	case !utf8.ValidString(id):
		return errors.New("identity is not UTF-8")
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return errors.New("identity holds a control character")
		}
	}
	return nil
}

// Reasons given to clients.
const (
	reasonMissing = "a credential is required"
	reasonTooLong = "credential too long"
	reasonUnknown = "credential not recognised"
	reasonExpired = "credential expired"
	reasonNotYet  = "credential not valid yet"
	reasonClaims  = "credential claims not accepted"
	reasonSubject = "credential names no valid subject"
)

// Verify checks a credential and returns its identity, or an *Error.
func (v *Verifier) Verify(cred []byte) (Identity, error) {
	switch {
	case len(cred) == 0:
		return "", &Error{Reason: reasonMissing}
	case len(cred) > MaxSize:
		return "", &Error{Reason: reasonTooLong}
	}
	if len(v.tokens) > 0 {
		if id, ok := v.token(cred); ok {
			return id, nil
		}
	}
	if v.parser == nil || bytes.Count(cred, []byte{'.'}) != 2 {
		return "", &Error{Reason: reasonUnknown}
	}
	return v.jwt(string(cred))
}

// token looks cred up among the static tokens: its hash is compared with
// every stored hash, in constant time, whether one matched already or not.
func (v *Verifier) token(cred []byte) (Identity, bool) {
	sum := sha256.Sum256(cred)
	found := -1
	for i := range v.tokens {
		if subtle.ConstantTimeCompare(sum[:], v.tokens[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return v.tokens[found].id, true
}

func (v *Verifier) jwt(s string) (Identity, error) {
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(s, &claims, v.key)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return "", &Error{Reason: reasonExpired, Err: err}
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "", &Error{Reason: reasonNotYet, Err: err}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience),
		errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return "", &Error{Reason: reasonClaims, Err: err}
	default:
		return "", &Error{Reason: reasonUnknown, Err: err}
	}
	if checkIdentity(claims.Subject) != nil {
		return "", &Error{Reason: reasonSubject}
	}
	return Identity(claims.Subject), nil
}

// key returns the key a token's signature is checked with: the one of its
// algorithm, checked again here by type so that no algorithm ever gets the
// other's key.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if v.hsKey != nil && t.Method.Alg() == jwt.SigningMethodHS256.Alg() {
			return v.hsKey, nil
		}
	case *jwt.SigningMethodEd25519:
		if v.edKey != nil {
			return v.edKey, nil
		}
	}
	return nil, fmt.Errorf("algorithm %q not accepted", t.Method.Alg())
}
