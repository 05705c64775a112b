package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// This file holds the vocabulary in which the message tables (defs16.go, later defs201.go …) are
// written, and the renderer that turns a table entry into a draft-04 JSON schema. The tables are the
// source of truth; the JSON files under ocpp16/ are generated from them (see gen_test.go) and
// embedded, so a vendor can still replace a schema file without rebuilding.

// kind is the JSON type of a field.
type kind uint8

const (
	kString kind = iota + 1
	kInteger
	kNumber
	kBoolean
	kObject
	kArray
)

func (k kind) String() string {
	switch k {
	case kString:
		return "string"
	case kInteger:
		return "integer"
	case kNumber:
		return "number"
	case kBoolean:
		return "boolean"
	case kObject:
		return "object"
	case kArray:
		return "array"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// field describes one property of a message (or, with an empty name, the items of an array).
type field struct {
	name       string
	kind       kind
	required   bool
	maxLength  int      // strings; 0: no limit
	enum       []string // strings
	format     string   // strings: "date-time", "uri"
	multipleOf string   // numbers: decimal text, rendered verbatim so 0.1 stays 0.1
	minItems   int      // arrays
	fields     []field  // objects: properties in document order
	items      *field   // arrays
}

// actionDef is one OCPP action: who may send its CALL and the fields of its request (CALL payload)
// and response (CALLRESULT payload).
type actionDef struct {
	name     string
	sender   Sender
	request  []field
	response []field
}

// Constructors, kept short so that a table reads like the specification.

func str(name string, maxLength int) field {
	return field{name: name, kind: kString, maxLength: maxLength}
}
func enum(name string, values ...string) field {
	return field{name: name, kind: kString, enum: values}
}
func dateTime(name string) field      { return field{name: name, kind: kString, format: "date-time"} }
func uri(name string) field           { return field{name: name, kind: kString, format: "uri"} }
func integer(name string) field       { return field{name: name, kind: kInteger} }
func boolean(name string) field       { return field{name: name, kind: kBoolean} }
func decimal(name, mult string) field { return field{name: name, kind: kNumber, multipleOf: mult} }
func object(name string, fields ...field) field {
	return field{name: name, kind: kObject, fields: fields}
}
func array(name string, item field) field {
	item.name, item.required = "", false
	return field{name: name, kind: kArray, items: &item}
}

// req marks a field as required.
func (f field) req() field { f.required = true; return f }

// min sets the minimum number of items of an array.
func (f field) min(n int) field { f.minItems = n; return f }

// fields is a shorthand for a message's field list.
func fields(fs ...field) []field { return fs }

// schemaDoc is the JSON shape of a generated schema; the field order is the key order in the file.
type schemaDoc struct {
	Schema               string      `json:"$schema,omitempty"`
	ID                   string      `json:"id,omitempty"`
	Title                string      `json:"title,omitempty"`
	Type                 string      `json:"type"`
	AdditionalProperties *bool       `json:"additionalProperties,omitempty"`
	Properties           *properties `json:"properties,omitempty"`
	Required             []string    `json:"required,omitempty"`
	Items                *schemaDoc  `json:"items,omitempty"`
	MinItems             int         `json:"minItems,omitempty"`
	MaxLength            int         `json:"maxLength,omitempty"`
	Enum                 []string    `json:"enum,omitempty"`
	Format               string      `json:"format,omitempty"`
	MultipleOf           json.Number `json:"multipleOf,omitempty"`
}

// properties is a JSON object that keeps the table's field order.
type properties struct {
	names []string
	docs  []*schemaDoc
}

func (p *properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range p.names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(name)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(p.docs[i])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

const draft04 = "http://json-schema.org/draft-04/schema#"

// renderSchema returns the draft-04 schema of a message with the given id (indented, newline-ended).
func renderSchema(id, title string, fs []field) ([]byte, error) {
	root := objectDoc(fs)
	root.Schema, root.ID, root.Title = draft04, id, title
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("schemas: render %s: %w", id, err)
	}
	return append(b, '\n'), nil
}

func objectDoc(fs []field) *schemaDoc {
	no := false
	d := &schemaDoc{Type: "object", AdditionalProperties: &no, Properties: &properties{}}
	for _, f := range fs {
		d.Properties.names = append(d.Properties.names, f.name)
		d.Properties.docs = append(d.Properties.docs, fieldDoc(f))
		if f.required {
			d.Required = append(d.Required, f.name)
		}
	}
	return d
}

func fieldDoc(f field) *schemaDoc {
	switch f.kind {
	case kObject:
		return objectDoc(f.fields)
	case kArray:
		return &schemaDoc{Type: "array", Items: fieldDoc(*f.items), MinItems: f.minItems}
	}
	return &schemaDoc{
		Type:       f.kind.String(),
		MaxLength:  f.maxLength,
		Enum:       f.enum,
		Format:     f.format,
		MultipleOf: json.Number(f.multipleOf),
	}
}
