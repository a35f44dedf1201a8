package identity

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Option configures a verifier built by [NewSPIFFE], [SPIFFEFromBundleFile]
// or [NewJWKS]. Options are validated by the constructor, which refuses an
// option that does not apply to the verifier it builds (a clock for a
// SPIFFE verifier, whose validation go-spiffe times itself).
type Option func(*config) error

// config collects the options of one constructor call.
type config struct {
	claims   []string
	algs     []string
	leeway   time.Duration
	now      func() time.Time
	idClaim  string
	jwksOnly []string // names of the JWKS-only options given, for NewSPIFFE's refusal
}

// WithClaims names string-valued claims the verifier copies into
// [authz.Agent] Attrs under their own names, for policies to read as
// agent.attrs.NAME. A claim that a token lacks, or whose value is not a
// string, is left out of Attrs (a policy reading it then fails, which
// denies). Repeated WithClaims add to the list. "trust_domain" cannot be
// named: only a [SPIFFE] verifier sets it, from the SPIFFE ID, so a rule
// on agent.attrs.trust_domain is never met by a claim of that name.
// Applies to both verifiers.
func WithClaims(names ...string) Option {
	return func(c *config) error {
		for _, n := range names {
			if n == "" {
				return errors.New("WithClaims: empty claim name")
			}
			if !slices.Contains(c.claims, n) {
				c.claims = append(c.claims, n)
			}
		}
		return nil
	}
}

// WithAlgorithms lists the JWS algorithms [NewJWKS] accepts ("RS256",
// "ES256", "EdDSA", ...); it is required. "none" and the HMAC algorithms
// (HS256, HS384, HS512) are refused: a JWKS is public, and an HMAC
// "signature" keyed with public material proves nothing (algorithm
// confusion). Repeated WithAlgorithms add to the list. JWKS only.
func WithAlgorithms(algs ...string) Option {
	return func(c *config) error {
		c.jwksOnly = append(c.jwksOnly, "WithAlgorithms")
		for _, a := range algs {
			if _, ok := asymmetricAlgs[a]; !ok {
				return fmt.Errorf("WithAlgorithms: algorithm %q is not an accepted asymmetric JWS algorithm", a)
			}
			if !slices.Contains(c.algs, a) {
				c.algs = append(c.algs, a)
			}
		}
		return nil
	}
}

// MaxLeeway bounds [WithLeeway].
const MaxLeeway = 5 * time.Minute

// WithLeeway sets the clock skew tolerated when checking exp, nbf and iat:
// a token expired by less than d is still accepted. The default is zero;
// d must be between 0 and [MaxLeeway]. The last WithLeeway wins. JWKS only.
func WithLeeway(d time.Duration) Option {
	return func(c *config) error {
		c.jwksOnly = append(c.jwksOnly, "WithLeeway")
		if d < 0 || d > MaxLeeway {
			return fmt.Errorf("WithLeeway: %v is outside [0, %v]", d, MaxLeeway)
		}
		c.leeway = d
		return nil
	}
}

// WithClock sets the verifier's clock (time.Now by default), for tests.
// The last WithClock wins. JWKS only.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		c.jwksOnly = append(c.jwksOnly, "WithClock")
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithIDClaim names the claim whose string value becomes the agent ID
// ("sub" by default). A token without it, or with an empty or non-string
// value, is refused. The last WithIDClaim wins. JWKS only: a JWT-SVID's
// agent is always its SPIFFE ID.
func WithIDClaim(name string) Option {
	return func(c *config) error {
		c.jwksOnly = append(c.jwksOnly, "WithIDClaim")
		if name == "" {
			return errors.New("WithIDClaim: empty claim name")
		}
		c.idClaim = name
		return nil
	}
}

// apply runs opts on a fresh config.
func apply(opts []Option) (*config, error) {
	c := &config{idClaim: "sub"}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("nil option")
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}
