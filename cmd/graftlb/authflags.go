package main

import (
	"bytes"
	"errors"
	"flag"
	"os"

	"github.com/graftlb/graftlb/balancer"
	"github.com/graftlb/graftlb/credential"
)

// authFlags are the proxy's credential flags (balancer.Config.Auth) and
// the limits that go with identities: --max-module-calls.
type authFlags struct {
	cfg            balancer.Config // only Auth and MaxModuleCalls are set
	maxModuleCalls int
}

func (a *authFlags) register(fs *flag.FlagSet) {
	c := &a.cfg.Auth
	fs.StringVar(&c.TokensFile, "auth-tokens", "", "require credentials: static tokens from this file, one \"identity token\" per line, # comments")
	fs.StringVar(&c.JWTHS256KeyFile, "auth-jwt-hs256-key", "", "require credentials: accept HS256 JWTs signed with the secret in this file (at least 32 bytes); identity = sub")
	fs.StringVar(&c.JWTEd25519KeyFile, "auth-jwt-ed25519-key", "", "require credentials: accept EdDSA JWTs signed by the Ed25519 public key in this PEM file; identity = sub")
	fs.StringVar(&c.JWTIssuer, "auth-jwt-issuer", "", "JWTs must carry this iss (default: not checked)")
	fs.StringVar(&c.JWTAudience, "auth-jwt-audience", "", "JWTs must carry this aud (default: not checked)")
	fs.DurationVar(&c.Leeway, "auth-jwt-leeway", credential.DefaultLeeway, "clock skew allowed on a JWT's exp and nbf (negative: none)")
	fs.IntVar(&a.maxModuleCalls, "max-module-calls", 0, "calls in flight per module through this proxy, then OVERLOADED (0: no cap)")
}

// enabled reports whether a credential flag was given.
func (a *authFlags) enabled() bool { return a.cfg.Auth.Enabled() }

// apply sets what the flags say in cfg.
func (a *authFlags) apply(cfg *balancer.Config) {
	cfg.Auth = a.cfg.Auth
	cfg.MaxModuleCalls = a.maxModuleCalls
}

// credentialFlags are the client side: what graftlb call and bench send
// in HELLO.
type credentialFlags struct {
	token string
	file  string
}

func (c *credentialFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.token, "credential", "", "credential sent in HELLO (a static token or a JWT); visible in ps: prefer --credential-file")
	fs.StringVar(&c.file, "credential-file", "", "file holding the credential sent in HELLO (trailing white space removed)")
}

// credential returns the credential to send, nil for none.
func (c *credentialFlags) credential() ([]byte, error) {
	switch {
	case c.token != "" && c.file != "":
		return nil, errors.New("give --credential or --credential-file, not both")
	case c.token != "":
		return []byte(c.token), nil
	case c.file != "":
		b, err := os.ReadFile(c.file)
		if err != nil {
			return nil, err
		}
		b = bytes.TrimRight(b, " \t\r\n")
		if len(b) == 0 {
			return nil, errors.New("credential file " + c.file + " is empty")
		}
		return b, nil
	}
	return nil, nil
}
