package secrets

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/taskguard/taskguard/authz"
)

const (
	// maxTokenLen is the longest token Verify parses and Issue produces.
	maxTokenLen = 8 << 10
	// maxLeeway is the largest clock-skew allowance WithLeeway accepts. A
	// revocation is kept this long past the token's expiry, so a verifier
	// with leeway cannot accept a revoked token.
	maxLeeway = time.Minute
	// minHMACKeyLen is the shortest HS256 key accepted (RFC 7518 §3.2).
	minHMACKeyLen = 32
	// tokenIDBytes is the number of random bytes in a jti.
	tokenIDBytes = 16
)

// TokenSpec describes the token a [Minter] mints for one secret name.
type TokenSpec struct {
	// Audience is the receiving service, the token's aud claim. Required.
	Audience string
	// Scope is the token's scope claim, serialised as one space-separated
	// string (RFC 8693 §4.2). Each entry must be a non-empty RFC 6749 scope
	// token (printable ASCII without space, '"' or '\'). An
	// [IssueRequest] may ask for a subset; an empty request scope gets all
	// of it.
	Scope []string
	// TTL is the token's lifetime: its exp is min(now+TTL, req.ExpiresAt),
	// truncated to the second. Required, at least one second (JWT times
	// have one-second precision).
	TTL time.Duration
}

// MintOption configures [NewMinter]. Exactly one key option
// ([WithEd25519Key] or [WithHMACKey]) and [WithIssuer] are required; for
// the other options a later one overrides an earlier one. [WithClock],
// [WithRevocations] and [WithRevocationStore] are MintOptions too.
type MintOption interface{ applyMint(*mintConfig) error }

type mintOption func(*mintConfig) error

func (f mintOption) applyMint(c *mintConfig) error { return f(c) }

type mintConfig struct {
	alg      string
	method   jwt.SigningMethod
	keys     func() jwtKeys
	nkeys    int
	issuer   string
	now      func() time.Time
	revs     *Revocations
	store    RevocationStore
	idSource io.Reader // nil: crypto/rand
}

// jwtKeys is a minter's key material. A Minter holds it only inside a
// closure, so that even reflection-based printing of a Minter (as an
// unexported field of another struct, or with a verb fmt rejects) shows a
// function address, not the key.
type jwtKeys struct {
	sign   any // ed25519.PrivateKey or []byte
	verify any // ed25519.PublicKey or []byte
}

// WithEd25519Key signs tokens with priv using EdDSA (RFC 8037). The key is
// copied. It must be a full 64-byte private key whose public half matches
// its seed.
func WithEd25519Key(priv ed25519.PrivateKey) MintOption {
	return mintOption(func(c *mintConfig) error {
		c.nkeys++
		k, err := checkEd25519Key(priv)
		if err != nil {
			return err
		}
		c.alg, c.method = jwt.SigningMethodEdDSA.Alg(), jwt.SigningMethodEdDSA
		keys := jwtKeys{sign: k, verify: k.Public().(ed25519.PublicKey)}
		c.keys = func() jwtKeys { return keys }
		return nil
	})
}

// WithHMACKey signs tokens with key using HS256. The key is copied and
// must be at least 32 bytes long. Every verifier holds the same key, so
// any verifier can also mint; prefer [WithEd25519Key] when the receiving
// service is not the broker's own process.
func WithHMACKey(key []byte) MintOption {
	return mintOption(func(c *mintConfig) error {
		c.nkeys++
		if len(key) < minHMACKeyLen {
			return fmt.Errorf("secrets: HMAC key is %d bytes, need at least %d", len(key), minHMACKeyLen)
		}
		k := append([]byte(nil), key...)
		c.alg, c.method = jwt.SigningMethodHS256.Alg(), jwt.SigningMethodHS256
		keys := jwtKeys{sign: k, verify: k}
		c.keys = func() jwtKeys { return keys }
		return nil
	})
}

// WithIssuer sets the iss claim. Required and non-empty.
func WithIssuer(iss string) MintOption {
	return mintOption(func(c *mintConfig) error {
		if iss == "" {
			return errors.New("secrets: empty issuer")
		}
		c.issuer = iss
		return nil
	})
}

func checkEd25519Key(priv ed25519.PrivateKey) (ed25519.PrivateKey, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("secrets: Ed25519 private key is %d bytes, need %d", len(priv), ed25519.PrivateKeySize)
	}
	k := ed25519.NewKeyFromSeed(priv.Seed())
	if subtle.ConstantTimeCompare(k, priv) != 1 {
		return nil, errors.New("secrets: Ed25519 private key's public half does not match its seed")
	}
	return k, nil
}

// Minter is a [Source] that mints a short-lived JWT (RFC 7519) per
// [IssueRequest], signed with EdDSA or HS256, carrying the task, agent,
// audience, scope and expiry. [Minter.Revoke] puts the token's ID on a
// [Revocations] list that [Verifier]s consult.
//
// A Minter is immutable after [NewMinter] and safe for concurrent use. The
// zero value is inert: Issue and Verifier return errors. Printing a Minter
// shows only its algorithm and issuer.
type Minter struct {
	alg      string
	method   jwt.SigningMethod
	keys     func() jwtKeys
	issuer   string
	now      func() time.Time
	revs     *Revocations
	store    RevocationStore // nil: only revs
	idSource io.Reader
	specs    map[string]TokenSpec
	maxTTL   time.Duration
}

var (
	_ Source     = (*Minter)(nil)
	_ Classifier = (*Minter)(nil)
)

// NewMinter returns a minter for the named tokens. It copies tokens and
// checks every spec (non-empty name and audience, TTL of at least one
// second, valid scope tokens) and the options (exactly one key, an
// issuer).
func NewMinter(tokens map[string]TokenSpec, opts ...MintOption) (*Minter, error) {
	var c mintConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o.applyMint(&c); err != nil {
			return nil, err
		}
	}
	switch {
	case c.nkeys == 0:
		return nil, errors.New("secrets: no signing key: use WithEd25519Key or WithHMACKey")
	case c.nkeys > 1:
		return nil, errors.New("secrets: more than one signing key option")
	case c.issuer == "":
		return nil, errors.New("secrets: no issuer: use WithIssuer")
	case len(tokens) == 0:
		return nil, errors.New("secrets: no token specs")
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.revs == nil {
		c.revs = NewRevocations(c.now)
	}
	m := &Minter{
		alg:      c.alg,
		method:   c.method,
		keys:     c.keys,
		issuer:   c.issuer,
		now:      c.now,
		revs:     c.revs,
		store:    c.store,
		idSource: c.idSource,
		specs:    make(map[string]TokenSpec, len(tokens)),
	}
	for name, s := range tokens {
		if err := checkTokenSpec(name, s); err != nil {
			return nil, err
		}
		s.Scope = append([]string(nil), s.Scope...)
		m.specs[name] = s
		m.maxTTL = max(m.maxTTL, s.TTL)
	}
	return m, nil
}

func checkTokenSpec(name string, s TokenSpec) error {
	switch {
	case name == "":
		return errors.New("secrets: token spec with empty name")
	case s.Audience == "":
		return fmt.Errorf("secrets: token spec %q: no audience", name)
	case s.TTL <= 0:
		return fmt.Errorf("secrets: token spec %q: TTL %v is not positive", name, s.TTL)
	case s.TTL < time.Second:
		return fmt.Errorf("secrets: token spec %q: TTL %v is under the one-second precision of JWT times", name, s.TTL)
	}
	for _, sc := range s.Scope {
		if !validScopeToken(sc) {
			return fmt.Errorf("secrets: token spec %q: invalid scope %q", name, sc)
		}
	}
	return nil
}

// validScopeToken reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < 0x21 || b > 0x7e || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// jwtClaims is the token payload: the registered claims plus the task,
// agent and scope.
type jwtClaims struct {
	jwt.RegisteredClaims
	Task  string `json:"task,omitempty"`
	Agent string `json:"agent,omitempty"`
	Scope string `json:"scope,omitempty"`
}

// Issue mints a token for req.Name. The token's claims are: iss (the
// minter's issuer), sub and agent (req.Agent), task (req.Task), aud (the
// spec's audience), scope (req.Scope if set, which must be a subset of the
// spec's scope, else the spec's scope), iat and nbf (now), exp
// (min(now+TTL, req.ExpiresAt)) and a random 128-bit jti. The credential's
// ID is the jti, its ExpiresAt the exp and its value the compact JWT.
//
// Issue does not block. It returns an error wrapping [ErrUnknownSecret] for
// an unknown name, and an error for an empty task or agent, a scope the
// spec does not grant, a lease that ends before a whole second is left, or
// a cancelled ctx.
func (m *Minter) Issue(ctx context.Context, req IssueRequest) (Credential, error) {
	if m == nil || m.keys == nil {
		return Credential{}, errors.New("secrets: Minter not initialised: use NewMinter")
	}
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return Credential{}, fmt.Errorf("secrets: mint %q: %w", req.Name, err)
		}
	}
	spec, ok := m.specs[req.Name]
	if !ok {
		return Credential{}, fmt.Errorf("%w %q", ErrUnknownSecret, req.Name)
	}
	if req.Task == "" || req.Agent == "" {
		return Credential{}, fmt.Errorf("secrets: mint %q: task and agent are required", req.Name)
	}
	scope := spec.Scope
	if len(req.Scope) > 0 {
		for _, s := range req.Scope {
			if !containsString(spec.Scope, s) {
				return Credential{}, fmt.Errorf("secrets: mint %q: scope %q not granted", req.Name, s)
			}
		}
		scope = req.Scope
	}
	now := m.now()
	exp := now.Add(spec.TTL)
	if !req.ExpiresAt.IsZero() && req.ExpiresAt.Before(exp) {
		exp = req.ExpiresAt
	}
	expDate := jwt.NewNumericDate(exp)
	if !expDate.After(now) {
		return Credential{}, fmt.Errorf("secrets: mint %q: lease ends before the token could start", req.Name)
	}
	id, err := m.newTokenID()
	if err != nil {
		return Credential{}, fmt.Errorf("secrets: mint %q: token ID: %w", req.Name, err)
	}
	iat := jwt.NewNumericDate(now)
	claims := &jwtClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    m.issuer,
			Subject:   req.Agent,
			Audience:  jwt.ClaimStrings{spec.Audience},
			ExpiresAt: expDate,
			NotBefore: iat,
			IssuedAt:  iat,
			ID:        id,
		},
		Task:  req.Task,
		Agent: req.Agent,
		Scope: strings.Join(scope, " "),
	}
	tok, err := jwt.NewWithClaims(m.method, claims).SignedString(m.keys().sign)
	if err != nil {
		return Credential{}, fmt.Errorf("secrets: mint %q: sign: %w", req.Name, err)
	}
	if len(tok) > maxTokenLen {
		return Credential{}, fmt.Errorf("secrets: mint %q: token is %d bytes, over the 8 KiB limit", req.Name, len(tok))
	}
	return NewCredential(id, []byte(tok), expDate.Time), nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (m *Minter) newTokenID() (string, error) {
	var b [tokenIDBytes]byte
	var err error
	if m.idSource != nil {
		_, err = io.ReadFull(m.idSource, b[:])
	} else {
		_, err = rand.Read(b[:])
	}
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Revoke adds c's token ID to the minter's revocation list until c expires
// (plus one minute, the largest verifier leeway), so verifiers sharing the
// list reject the token from now on. A credential without ExpiresAt is
// kept for the longest TTL of the minter's specs. With
// [WithRevocationStore] the ID also goes to the store, under ctx, for
// verifiers in other processes; Revoke then returns the store's error
// (the in-process list has the ID either way). Otherwise it ignores ctx,
// so that it works when called for a task whose context has ended, and
// returns an error only for a credential without an ID or a zero Minter.
func (m *Minter) Revoke(ctx context.Context, c Credential) error {
	if m == nil || m.revs == nil {
		return errors.New("secrets: Minter not initialised: use NewMinter")
	}
	if c.ID == "" {
		return errors.New("secrets: revoke: credential has no ID")
	}
	exp := c.ExpiresAt
	if exp.IsZero() {
		exp = m.now().Add(m.maxTTL)
	}
	m.revs.Add(c.ID, exp)
	if m.store != nil {
		if err := m.store.RevokeToken(ctx, c.ID, exp.Add(maxLeeway)); err != nil {
			return fmt.Errorf("secrets: revoke: revocation store: %w", err)
		}
	}
	return nil
}

// Class reports [authz.Confidential] for the names the minter knows; ok is
// false for other names.
func (m *Minter) Class(name string) (s authz.Sensitivity, ok bool) {
	if m == nil {
		return 0, false
	}
	if _, ok := m.specs[name]; !ok {
		return 0, false
	}
	return authz.Confidential, true
}

// Revocations returns the minter's revocation list (nil for a zero
// Minter). The list is shared, not copied.
func (m *Minter) Revocations() *Revocations {
	if m == nil {
		return nil
	}
	return m.revs
}

// Verifier returns a verifier for tokens minted for audience: it has the
// minter's verification key (the public key for EdDSA, the shared key for
// HS256), issuer, clock, revocation list and store, and no leeway. Use
// [NewVerifier] in another process, or to set a leeway.
func (m *Minter) Verifier(audience string) (*Verifier, error) {
	if m == nil || m.keys == nil {
		return nil, errors.New("secrets: Minter not initialised: use NewMinter")
	}
	var key VerifyOption
	switch k := m.keys().verify.(type) {
	case ed25519.PublicKey:
		key = WithEd25519PublicKey(k)
	case []byte:
		key = WithHMACVerifyKey(k)
	default:
		return nil, errors.New("secrets: Minter has no verification key")
	}
	opts := []VerifyOption{key,
		WithExpectedIssuer(m.issuer),
		WithExpectedAudience(audience),
		WithClock(m.now),
		WithRevocations(m.revs)}
	if m.store != nil {
		opts = append(opts, WithRevocationStore(m.store))
	}
	return NewVerifier(opts...)
}

// String returns "secrets.Minter{alg: ALG, issuer: ISS}"; keys are never
// printed.
func (m Minter) String() string {
	return "secrets.Minter{alg: " + m.alg + ", issuer: " + m.issuer + "}"
}

// GoString is String.
func (m Minter) GoString() string { return m.String() }

// Format prints String for every verb.
func (m Minter) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// MarshalJSON returns the algorithm and issuer only.
func (m Minter) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"alg": m.alg, "issuer": m.issuer})
}

// LogValue implements [slog.LogValuer] with the algorithm and issuer only.
func (m Minter) LogValue() slog.Value {
	return slog.GroupValue(slog.String("alg", m.alg), slog.String("issuer", m.issuer))
}
