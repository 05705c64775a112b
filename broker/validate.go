package broker

import (
	"encoding/json"
	"fmt"
	"path"

	"github.com/chargemq/chargemq/ocpp"
	"github.com/chargemq/chargemq/schemas"
)

// CheckingMode is a value of ocpp.message_format_checking.
type CheckingMode string

// The checking modes, named as EMQX names them.
const (
	CheckAll          CheckingMode = "all"
	CheckUpstreamOnly CheckingMode = "upstream_only"
	CheckDnstreamOnly CheckingMode = "dnstream_only"
	CheckDisable      CheckingMode = "disable"
)

// Checking converts the mode to the directions ocpp checks; ok is false for
// an unknown mode.
func (m CheckingMode) Checking() (c ocpp.Checking, ok bool) {
	switch m {
	case CheckAll:
		return ocpp.CheckAll, true
	case CheckUpstreamOnly:
		return ocpp.CheckUpstream, true
	case CheckDnstreamOnly:
		return ocpp.CheckDownstream, true
	case CheckDisable:
		return ocpp.CheckNone, true
	}
	return 0, false
}

// CheckingOverride relaxes (or tightens) checking for charge points whose
// id matches a glob (path.Match syntax), for chargers known to be
// non-compliant.
type CheckingOverride struct {
	CID  string       `yaml:"cid" json:"cid"`
	Mode CheckingMode `yaml:"mode" json:"mode"`
}

// schemaValidator adapts a schemas.Set to ocpp.Validator.
type schemaValidator struct{ set *schemas.Set }

func (v schemaValidator) Sender(action string) (fromCP, fromCS, ok bool) {
	s, ok := v.set.Sender(action)
	return s&schemas.SenderChargePoint != 0, s&schemas.SenderCentralSystem != 0, ok
}

func (v schemaValidator) Check(action string, response bool, payload []byte) *ocpp.CallError {
	return callError(v.set.Check(action, response, payload))
}

// ScanCall implements ocpp.ScanValidator: the frame parser has the
// compiled validator check a CALL's payload while it splits the frame.
func (v schemaValidator) ScanCall(action string, data []byte) (int, *ocpp.CallError) {
	end, f := v.set.Scan(action, false, data)
	return end, callError(f)
}

// callError is a schema failure as the CALLERROR that answers it; nil
// for none.
func callError(f *schemas.Failure) *ocpp.CallError {
	if f == nil {
		return nil
	}
	details, _ := json.Marshal(struct {
		Violations []schemas.Violation `json:"violations"`
	}{f.Violations})
	return &ocpp.CallError{Code: ocpp.ErrorCode(f.Code), Description: f.Error(), Details: details}
}

var _ ocpp.ScanValidator = schemaValidator{}

// validation builds the validators and the per-charge-point checking
// function from the options.
func validation(o Options) (map[ocpp.Protocol]ocpp.Validator, func(string) (ocpp.Checking, string), error) {
	def, ok := o.Checking.Checking()
	if !ok {
		return nil, nil, fmt.Errorf("ocpp.message_format_checking: unknown mode %q (all, upstream_only, dnstream_only, disable)", o.Checking)
	}
	overrides := make([]ocpp.Checking, len(o.CheckingOverrides))
	for i, r := range o.CheckingOverrides {
		if _, err := path.Match(r.CID, ""); err != nil {
			return nil, nil, fmt.Errorf("ocpp.checking_overrides[%d].cid: bad glob %q: %v", i, r.CID, err)
		}
		if overrides[i], ok = r.Mode.Checking(); !ok {
			return nil, nil, fmt.Errorf("ocpp.checking_overrides[%d].mode: unknown mode %q", i, r.Mode)
		}
	}
	set, err := schemas.Load(schemas.Options{Protocol: string(ocpp.OCPP16), IDPrefix: o.SchemaIDPrefix, Dir: o.SchemaDir})
	if err != nil {
		return nil, nil, err
	}
	checking := func(cid string) (ocpp.Checking, string) {
		for i, r := range o.CheckingOverrides {
			if ok, _ := path.Match(r.CID, cid); ok {
				return overrides[i], fmt.Sprintf("checking_overrides[%d] cid=%q mode=%s", i, r.CID, r.Mode)
			}
		}
		return def, ""
	}
	return map[ocpp.Protocol]ocpp.Validator{ocpp.OCPP16: schemaValidator{set}}, checking, nil
}
