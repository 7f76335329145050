package identity

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

var b64 = base64.RawURLEncoding

// signJWT returns an RS256 JWT of claims.
func signJWT(key *rsa.PrivateKey, kid string, claims any) (string, error) {
	head, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64.EncodeToString(head) + "." + b64.EncodeToString(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

// verifyJWT checks an RS256 or PS256 signature by pub and decodes the
// claims into out.
func verifyJWT(tok string, pub *rsa.PublicKey, out any) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	var head struct {
		Alg string `json:"alg"`
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &head) != nil {
		return errors.New("malformed JWT header")
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return errors.New("malformed JWT signature")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch head.Alg {
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, sum[:], sig, nil)
	default:
		return errors.New("unsupported JWT alg " + head.Alg)
	}
	if err != nil {
		return errors.New("JWT signature does not verify")
	}
	body, err := b64.DecodeString(parts[1])
	if err != nil {
		return errors.New("malformed JWT claims")
	}
	return json.Unmarshal(body, out)
}
