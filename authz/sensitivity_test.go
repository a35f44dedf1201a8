package authz

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestSensitivity(t *testing.T) {
	t.Parallel()
	assert.True(t, Public < Internal && Internal < Confidential && Confidential < Restricted)
	assert.Equal(t, Public, Sensitivity(0), "the zero value is Public")
	for s, name := range map[Sensitivity]string{Public: "public", Internal: "internal", Confidential: "confidential", Restricted: "restricted"} {
		assert.Equal(t, name, s.String())
		b, err := json.Marshal(s)
		require.NoError(t, err)
		assert.Equal(t, `"`+name+`"`, string(b))
		var back Sensitivity
		require.NoError(t, json.Unmarshal([]byte(`"`+name+`"`), &back))
		assert.Equal(t, s, back)
		var y struct{ S Sensitivity }
		require.NoError(t, yaml.Unmarshal([]byte("s: "+name), &y))
		assert.Equal(t, s, y.S)
	}
	var s Sensitivity
	assert.NoError(t, s.UnmarshalText([]byte("CONFIDENTIAL")))
	assert.Equal(t, Confidential, s)
	assert.Error(t, s.UnmarshalText([]byte("secret")))
	assert.Equal(t, "sensitivity(9)", Sensitivity(9).String())
	_, err := Sensitivity(9).MarshalText()
	assert.Error(t, err)
	assert.False(t, Sensitivity(-1).Valid())
}

func TestEffect(t *testing.T) {
	t.Parallel()
	assert.Equal(t, Deny, Effect(0), "the zero value is Deny")
	assert.Equal(t, Deny, Decision{}.Effect, "the zero Decision denies")
	for e, name := range map[Effect]string{Deny: "deny", Allow: "allow", Ask: "ask"} {
		assert.Equal(t, name, e.String())
		b, err := e.MarshalText()
		require.NoError(t, err)
		assert.Equal(t, name, string(b))
		var back Effect
		require.NoError(t, back.UnmarshalText([]byte(name)))
		assert.Equal(t, e, back)
	}
	var e Effect
	assert.Error(t, e.UnmarshalText([]byte("permit")))
	_, err := Effect(7).MarshalText()
	assert.Error(t, err)
	assert.Equal(t, "effect(7)", Effect(7).String())
}
