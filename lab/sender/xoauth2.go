package sender

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/otpprobe/otpprobe/lab/identity"
)

const mechXOAUTH2 = "XOAUTH2"

// errXOAUTH2Failed is Exchange Online's final answer after the error
// challenge of a refused token.
var errXOAUTH2Failed = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}

// xoauth2Server is the server side of XOAUTH2: the client sends
// "user=U^Aauth=Bearer T^A^A"; a refused token gets a base64 JSON error
// challenge ({"status":"401","schemes":"bearer","scope":...}), which the
// client must answer with an empty line before the final 535.
type xoauth2Server struct {
	auth   func(user, token string) error
	failed error
	step   int
}

func newXOAUTH2Server(auth func(user, token string) error) sasl.Server {
	return &xoauth2Server{auth: auth}
}

func (x *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	switch x.step {
	case 0:
		if response == nil { // no initial response: ask for it
			x.step = -1
			return []byte{}, false, nil
		}
		x.step = 1
		user, token, ok := identity.ParseXOAUTH2(string(response))
		if !ok {
			return nil, true, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed XOAUTH2 response"}
		}
		err := x.auth(user, token)
		if err == nil {
			return nil, true, nil
		}
		var ve *identity.VerifyError
		if !errors.As(err, &ve) {
			return nil, true, err
		}
		x.failed = errXOAUTH2Failed
		challenge, _ := json.Marshal(map[string]string{"status": strconv.Itoa(ve.Status), "schemes": "bearer", "scope": "https://outlook.office365.com/.default"})
		return challenge, false, nil
	case -1:
		x.step = 0
		return x.Next(response)
	}
	return nil, true, x.failed
}
