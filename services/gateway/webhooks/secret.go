package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret (the Standard Webhooks form).
const SecretPrefix = "whsec_"

// NewSecret is a new signing secret: whsec_ and 32 random bytes in base64.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// Sign is the Standard Webhooks signature header of one delivery:
// v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"> keyed with the
// secret's bytes.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return "", fmt.Errorf("decoding the webhook secret: %w", err)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts.Unix(), 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// Sealer encrypts secrets at rest with AES-256-GCM; the webhook id is
// the associated data, so a secret copied to another record does not
// open.
type Sealer struct{ aead cipher.AEAD }

// LoadKey is the key of MLPANEL_SECRET_KEY (32 bytes, base64 or hex), or
// when that is empty the one in <home>/secret.key, made on first use.
func LoadKey(env, home string) ([]byte, error) {
	if env != "" {
		for _, dec := range []func(string) ([]byte, error){base64.StdEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString} {
			if k, err := dec(strings.TrimSpace(env)); err == nil && len(k) == 32 {
				return k, nil
			}
		}
		return nil, errors.New("MLPANEL_SECRET_KEY: want 32 bytes in base64 or hex, e.g. the output of `openssl rand -base64 32`")
	}
	path := filepath.Join(home, "secret.key")
	if b, err := os.ReadFile(path); err == nil {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is not a key this panel wrote (32 bytes, base64): restore it from a backup, or set MLPANEL_SECRET_KEY", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", home, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadKey("", home) // another gateway wrote it first
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return k, f.Sync()
}

// NewSealer uses a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	return &Sealer{aead: a}, nil
}

// Seal encrypts secret for the webhook id.
func (s *Sealer) Seal(id, secret string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(secret), []byte(id)))
}

// Open decrypts what Seal made.
func (s *Sealer) Open(id, sealed string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("webhook %s: the stored secret is damaged", id)
	}
	n := s.aead.NonceSize()
	p, err := s.aead.Open(nil, b[:n], b[n:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("webhook %s: the stored secret does not open with this key (was MLPANEL_SECRET_KEY or secret.key changed?)", id)
	}
	return string(p), nil
}
