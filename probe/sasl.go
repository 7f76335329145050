package probe

import (
	"fmt"

	"github.com/emersion/go-sasl"

	"github.com/otpprobe/otpprobe/targets"
)

// saslMechanism is the SASL name of a configured auth mechanism.
func saslMechanism(mech string) (string, error) {
	switch mech {
	case targets.AuthPlain:
		return sasl.Plain, nil
	case targets.AuthLogin:
		return sasl.Login, nil
	case targets.AuthXOAUTH2:
		return "XOAUTH2", nil
	}
	return "", fmt.Errorf("auth mechanism %q: want plain, login or xoauth2", mech)
}

// saslClient builds the client for a SASL mechanism name from
// saslMechanism. XOAUTH2's client is ours (newXOAUTH2Client): go-sasl
// does not ship one.
func saslClient(name, user, secret string) sasl.Client {
	switch name {
	case sasl.Plain:
		return sasl.NewPlainClient("", user, secret)
	case sasl.Login:
		return sasl.NewLoginClient(user, secret)
	default:
		return newXOAUTH2Client(user, secret)
	}
}
