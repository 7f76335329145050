package targets

import (
	"errors"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// MessageData is what the canary templates see.
type MessageData struct {
	Code  string // the 6-digit OTP code
	Token string // the attempt's token; must appear in the Subject
}

// Bounds on rendered text: a template is config, not a way to make the
// prober write megabytes per attempt.
const (
	maxSubjectLen = 998 // RFC 5322 line limit
	maxBodyLen    = 64 << 10
)

// sample is the data templates are checked against at load.
var sample = MessageData{Code: "123456", Token: "tok0sample0token"}

// Render executes the probe's message templates (parsed at load; a Probe
// built in code is parsed on each call).
func (p Probe) Render(code, token string) (subject, body string, err error) {
	if p.subject == nil || p.body == nil {
		if err := p.parseTemplates(); err != nil {
			return "", "", err
		}
	}
	d := MessageData{Code: code, Token: token}
	if subject, err = execute(p.subject, d, maxSubjectLen); err != nil {
		return "", "", &Error{Path: "message.subject", Msg: err.Error()}
	}
	if strings.ContainsAny(subject, "\r\n") {
		return "", "", &Error{Path: "message.subject", Msg: "renders a line break; a header must be one line"}
	}
	if body, err = execute(p.body, d, maxBodyLen); err != nil {
		return "", "", &Error{Path: "message.body", Msg: err.Error()}
	}
	return subject, body, nil
}

func (p *Probe) parseTemplates() error {
	subj, err := parseTemplate("subject", p.Message.Subject)
	if err != nil {
		return &Error{Path: "message.subject", Msg: err.Error()}
	}
	body, err := parseTemplate("body", p.Message.Body)
	if err != nil {
		return &Error{Path: "message.body", Msg: err.Error()}
	}
	p.subject, p.body = subj, body
	return nil
}

// parseTemplate parses text and rejects range, define and template:
// canaries need fields and conditionals, and a loop (range over an
// integer) could stall the prober.
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	if len(t.Templates()) > 1 {
		return nil, errors.New("define/block are not allowed")
	}
	if err := checkNodes(t.Root); err != nil {
		return nil, err
	}
	return t, nil
}

func checkNodes(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNodes(c); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	case *parse.RangeNode:
		return errors.New("range is not allowed in message templates")
	case *parse.TemplateNode:
		return errors.New("template calls are not allowed in message templates")
	}
	return nil
}

func checkBranch(b *parse.BranchNode) error {
	if err := checkNodes(b.List); err != nil {
		return err
	}
	if b.ElseList != nil {
		return checkNodes(b.ElseList)
	}
	return nil
}

func execute(t *template.Template, d MessageData, limit int) (string, error) {
	w := &limitedBuffer{limit: limit}
	if err := t.Execute(w, d); err != nil {
		if w.overflow {
			return "", fmt.Errorf("renders more than %d bytes", limit)
		}
		return "", errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	return w.String(), nil
}
