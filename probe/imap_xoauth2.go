package probe

import "github.com/emersion/go-sasl"

// xoauth2Client is the client side of Google's and Microsoft's XOAUTH2
// SASL mechanism, which go-sasl does not ship (and will not: go-sasl #20).
type xoauth2Client struct {
	user, token string
}

func newXOAUTH2Client(user, token string) sasl.Client {
	return &xoauth2Client{user: user, token: token}
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge (a base64 JSON status) with an
// empty response, as the mechanism requires; the server then ends the
// exchange with NO. Returning an error here would leave AUTHENTICATE
// half-done on the wire.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}
