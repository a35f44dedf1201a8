package secrets

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every error [Verifier.Verify] returns. The
// error text names the reason (malformed, bad signature, expired, ...) and
// never contains any part of the token.
var ErrInvalidToken = errors.New("secrets: invalid token")

// The reasons Verify reports. Each is a fixed message, so no part of a token
// can reach an error string.
var (
	errTokenNotConfigured = fmt.Errorf("%w: verifier not configured", ErrInvalidToken)
	errTokenTooLong       = fmt.Errorf("%w: longer than 8 KiB", ErrInvalidToken)
	errTokenMalformed     = fmt.Errorf("%w: malformed", ErrInvalidToken)
	errTokenAlg           = fmt.Errorf("%w: unexpected signing algorithm", ErrInvalidToken)
	errTokenSignature     = fmt.Errorf("%w: bad signature", ErrInvalidToken)
	errTokenIssuer        = fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	errTokenAudience      = fmt.Errorf("%w: audience mismatch", ErrInvalidToken)
	errTokenExpired       = fmt.Errorf("%w: expired", ErrInvalidToken)
	errTokenNotYetValid   = fmt.Errorf("%w: not yet valid", ErrInvalidToken)
	errTokenIssuedLater   = fmt.Errorf("%w: issued in the future", ErrInvalidToken)
	errTokenNoID          = fmt.Errorf("%w: missing claim jti", ErrInvalidToken)
	errTokenNoExpiry      = fmt.Errorf("%w: missing claim exp", ErrInvalidToken)
	errTokenNoTask        = fmt.Errorf("%w: missing claim task", ErrInvalidToken)
	errTokenNoAgent       = fmt.Errorf("%w: missing claim agent", ErrInvalidToken)
	errTokenClaims        = fmt.Errorf("%w: invalid claims", ErrInvalidToken)
	errTokenRevoked       = fmt.Errorf("%w: revoked", ErrInvalidToken)
	errTokenRevocation    = fmt.Errorf("%w: revocation store unavailable", ErrInvalidToken)
)

// Claims are the claims of a verified token. Times are in UTC; a time is
// zero when its claim was absent (only nbf and iat may be).
type Claims struct {
	// ID is the token ID (jti).
	ID string
	// Issuer is the iss claim.
	Issuer string
	// Subject is the sub claim; minted tokens carry the agent.
	Subject string
	// Task and Agent identify the task the token was minted for.
	Task, Agent string
	// Audience is the aud claim.
	Audience []string
	// Scope is the scope claim split at spaces.
	Scope []string
	// IssuedAt, NotBefore and ExpiresAt are the iat, nbf and exp claims.
	IssuedAt, NotBefore, ExpiresAt time.Time
}

// VerifyOption configures [NewVerifier]. Exactly one key option
// ([WithEd25519PublicKey] or [WithHMACVerifyKey]), [WithExpectedIssuer]
// and [WithExpectedAudience] are required; for the other options a later
// one overrides an earlier one. [WithClock], [WithRevocations] and
// [WithRevocationStore] are VerifyOptions too.
type VerifyOption interface{ applyVerify(*verifyConfig) error }

type verifyOption func(*verifyConfig) error

func (f verifyOption) applyVerify(c *verifyConfig) error { return f(c) }

type verifyConfig struct {
	alg      string
	key      any
	nkeys    int
	issuer   string
	audience string
	now      func() time.Time
	revs     *Revocations
	store    RevocationStore
	leeway   time.Duration
}

// WithEd25519PublicKey accepts only EdDSA tokens signed by pub's private
// key. The key is copied and must be 32 bytes.
func WithEd25519PublicKey(pub ed25519.PublicKey) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		c.nkeys++
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("secrets: Ed25519 public key is %d bytes, need %d", len(pub), ed25519.PublicKeySize)
		}
		c.alg = jwt.SigningMethodEdDSA.Alg()
		c.key = append(ed25519.PublicKey(nil), pub...)
		return nil
	})
}

// WithHMACVerifyKey accepts only HS256 tokens made with key. The key is
// copied and must be at least 32 bytes long.
func WithHMACVerifyKey(key []byte) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		c.nkeys++
		if len(key) < minHMACKeyLen {
			return fmt.Errorf("secrets: HMAC key is %d bytes, need at least %d", len(key), minHMACKeyLen)
		}
		c.alg = jwt.SigningMethodHS256.Alg()
		c.key = append([]byte(nil), key...)
		return nil
	})
}

// WithExpectedIssuer sets the iss a token must carry. Required and
// non-empty.
func WithExpectedIssuer(iss string) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if iss == "" {
			return errors.New("secrets: empty expected issuer")
		}
		c.issuer = iss
		return nil
	})
}

// WithExpectedAudience sets the audience a token's aud must include: the
// verifying service. Required and non-empty.
func WithExpectedAudience(aud string) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if aud == "" {
			return errors.New("secrets: empty expected audience")
		}
		c.audience = aud
		return nil
	})
}

// WithLeeway allows d of clock skew on exp, nbf and iat. The default is 0;
// d must be between 0 and one minute.
func WithLeeway(d time.Duration) VerifyOption {
	return verifyOption(func(c *verifyConfig) error {
		if d < 0 || d > maxLeeway {
			return fmt.Errorf("secrets: leeway %v not within [0, %v]", d, maxLeeway)
		}
		c.leeway = d
		return nil
	})
}

// Verifier checks tokens minted by a [Minter] for one receiving service.
// It is immutable after [NewVerifier] and safe for concurrent use. The
// zero value rejects every token. Printing a Verifier shows only its
// algorithm and issuer.
type Verifier struct {
	alg     string
	issuer  string
	parser  *jwt.Parser
	keyFunc jwt.Keyfunc // holds the key
	revs    *Revocations
	store   RevocationStore // nil: only revs
}

// NewVerifier returns a verifier for the key, issuer and audience the
// options give.
func NewVerifier(opts ...VerifyOption) (*Verifier, error) {
	var c verifyConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyVerify(&c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.nkeys == 0:
		return nil, errors.New("secrets: no verification key: use WithEd25519PublicKey or WithHMACVerifyKey")
	case c.nkeys > 1:
		return nil, errors.New("secrets: more than one verification key option")
	case c.issuer == "":
		return nil, errors.New("secrets: no expected issuer: use WithExpectedIssuer")
	case c.audience == "":
		return nil, errors.New("secrets: no expected audience: use WithExpectedAudience")
	}
	if c.now == nil {
		c.now = time.Now
	}
	alg, key := c.alg, c.key
	return &Verifier{
		alg:    alg,
		issuer: c.issuer,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithIssuer(c.issuer),
			jwt.WithAudience(c.audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(c.now),
			jwt.WithLeeway(c.leeway),
			jwt.WithStrictDecoding(),
		),
		keyFunc: func(t *jwt.Token) (any, error) {
			if t.Method == nil || t.Method.Alg() != alg {
				return nil, errTokenAlg
			}
			return key, nil
		},
		revs:  c.revs,
		store: c.store,
	}, nil
}

// Verify checks token and returns its claims. It rejects, with an error
// wrapping [ErrInvalidToken], a token that is longer than 8 KiB or not
// three base64url segments; whose alg is not exactly the verifier's; whose
// signature does not verify; whose iss is not the expected issuer or
// whose aud lacks the expected audience; that is expired, not yet valid
// (nbf) or issued in the future (iat), within the leeway; that lacks jti,
// exp, task or agent; or whose jti is revoked. The error names the reason
// and never contains the token.
//
// Without a [RevocationStore] Verify does not block (beyond a short read
// lock on the revocation list). With one it asks the store, bounded by
// [DefaultRevocationTimeout], and rejects the token when the store cannot
// answer; [Verifier.VerifyContext] takes the caller's context instead.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if v != nil && v.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultRevocationTimeout)
		defer cancel()
		return v.VerifyContext(ctx, token)
	}
	return v.VerifyContext(context.Background(), token)
}

// VerifyContext is [Verifier.Verify] with ctx bounding the lookup in the
// verifier's [RevocationStore] (ctx is unused without one). A done ctx or
// a store error rejects the token.
func (v *Verifier) VerifyContext(ctx context.Context, token string) (*Claims, error) {
	if v == nil || v.parser == nil {
		return nil, errTokenNotConfigured
	}
	if len(token) > maxTokenLen {
		return nil, errTokenTooLong
	}
	if !compactJWS(token) {
		return nil, errTokenMalformed
	}
	var c jwtClaims
	t, err := v.parser.ParseWithClaims(token, &c, v.keyFunc)
	if err != nil {
		return nil, v.reason(err, t, &c)
	}
	switch {
	case c.ID == "":
		return nil, errTokenNoID
	case c.Task == "":
		return nil, errTokenNoTask
	case c.Agent == "":
		return nil, errTokenNoAgent
	}
	if v.revs.Revoked(c.ID) {
		return nil, errTokenRevoked
	}
	if v.store != nil {
		revoked, err := v.storeRevoked(ctx, c.ID)
		switch {
		case err != nil:
			return nil, errTokenRevocation
		case revoked:
			return nil, errTokenRevoked
		}
	}
	return &Claims{
		ID:        c.ID,
		Issuer:    c.Issuer,
		Subject:   c.Subject,
		Task:      c.Task,
		Agent:     c.Agent,
		Audience:  append([]string(nil), c.Audience...),
		Scope:     strings.Fields(c.Scope),
		IssuedAt:  numericTime(c.IssuedAt),
		NotBefore: numericTime(c.NotBefore),
		ExpiresAt: numericTime(c.ExpiresAt),
	}, nil
}

// storeRevoked asks the verifier's store, turning a panic into an error.
func (v *Verifier) storeRevoked(ctx context.Context, id string) (revoked bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			revoked, err = false, fmt.Errorf("revocation store panicked: %v", r)
		}
	}()
	return v.store.TokenRevoked(ctx, id)
}

// compactJWS reports whether s is three non-empty-header base64url
// segments. Rejecting other bytes up front matters: base64 decoding skips
// CR and LF, so without this check a signature with a line break inserted
// would still verify.
func compactJWS(s string) bool {
	dots := 0
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '.':
			dots++
		case 'A' <= b && b <= 'Z', 'a' <= b && b <= 'z', '0' <= b && b <= '9', b == '-', b == '_':
		default:
			return false
		}
	}
	return dots == 2
}

// reason maps a jwt parse error to one of the fixed Verify errors. t and c
// are what ParseWithClaims returned and decoded.
func (v *Verifier) reason(err error, t *jwt.Token, c *jwtClaims) error {
	switch {
	case t == nil || errors.Is(err, jwt.ErrTokenMalformed):
		return errTokenMalformed
	case t.Method == nil || t.Method.Alg() != v.alg || errors.Is(err, jwt.ErrTokenUnverifiable):
		return errTokenAlg
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errTokenSignature
	case !errors.Is(err, jwt.ErrTokenInvalidClaims):
		return errTokenMalformed
	case c.Issuer != v.issuer || errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errTokenIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience) || len(c.Audience) == 0 || len(c.Audience) == 1 && c.Audience[0] == "":
		return errTokenAudience
	case c.ExpiresAt == nil:
		return errTokenNoExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return errTokenExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errTokenNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errTokenIssuedLater
	default:
		return errTokenClaims
	}
}

func numericTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.UTC()
}

// String returns "secrets.Verifier{alg: ALG, issuer: ISS}"; keys are never
// printed.
func (v Verifier) String() string {
	return "secrets.Verifier{alg: " + v.alg + ", issuer: " + v.issuer + "}"
}

// GoString is String.
func (v Verifier) GoString() string { return v.String() }

// Format prints String for every verb.
func (v Verifier) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, v.String()) }

// MarshalJSON returns the algorithm and issuer only.
func (v Verifier) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"alg": v.alg, "issuer": v.issuer})
}

// LogValue implements [slog.LogValuer] with the algorithm and issuer only.
func (v Verifier) LogValue() slog.Value {
	return slog.GroupValue(slog.String("alg", v.alg), slog.String("issuer", v.issuer))
}
