package schemas

import (
	"net/url"
	"testing"
)

func TestIsDateTime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"2024-05-01T10:00:00Z", true},
		{"2024-05-01T10:00:00.1Z", true},
		{"2024-05-01T10:00:00.123456789+02:00", true},
		{"2024-05-01t10:00:00z", true},
		{"2024-02-29T00:00:00-23:59", true},
		{"2000-02-29T00:00:00Z", true},
		{"2016-12-31T23:59:60Z", true},
		{"1990-12-31T15:59:60-08:00", true}, // RFC 3339 §5.8 example
		{"2024-05-01T10:00:00", false},      // no offset: rejected on purpose (ajv accepts)
		{"2024-05-01T10:00:00.123", false},
		{"2024-05-01", false},
		{"10:00:00Z", false},
		{"2024-05-01 10:00:00Z", false},
		{"2024-05-01T10:00:00+0200", false},
		{"2024-05-01T10:00:00+02", false},
		{"2024-05-01T10:00:00.Z", false},
		{"2024-05-01T10:00:00ZZ", false},
		{"2024-05-01T10:00:00+02:00 ", false},
		{"2023-02-29T00:00:00Z", false},
		{"1900-02-29T00:00:00Z", false},
		{"2024-04-31T00:00:00Z", false},
		{"2024-00-10T00:00:00Z", false},
		{"2024-05-00T00:00:00Z", false},
		{"2024-05-01T24:00:00Z", false},
		{"2024-05-01T10:60:00Z", false},
		{"2024-05-01T10:00:60Z", false},
		{"2024-05-01T10:00:00+24:00", false},
		{"2024-05-01T10:00:00+02:60", false},
		{"2024-5-01T10:00:00Z", false},
		{"２024-05-01T10:00:00Z", false},
		{"", false},
	} {
		if got := isDateTime(tc.in); got != tc.want {
			t.Errorf("isDateTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if !(dateTimeChecker{}).IsFormat(42) {
		t.Error("non-strings must pass: the type keyword judges them")
	}
}

func TestIsURI(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"ftp://user:secret@files.example.com/uploads/", true},
		{"https://example.com/fw.bin?x=1%20y#frag", true},
		{"ftp://[2001:db8::1]:21/diag/", true},
		{"sftp://host:2222/a/b", true},
		{"file:///var/log/x", true},
		{"urn:isbn:0451450523", true},
		{"", false},
		{"/uploads/diag", false},
		{"files.example.com/uploads", false},
		{"ftp:", false},
		{"1ftp://host/", false},
		{"ft p://host/", false},
		{"ftp://host/a b", false},
		{"ftp://host/a\tb", false},
		{"ftp://host/ü", false},
		{`ftp://host\a`, false},
		{"ftp://host/%zz", false},
		{"ftp://host/%2", false},
		{"ftp://host:port/", false},
		{"ftp://[::1/", false},
		// What strict charge points (ajv, RFC 3986) refuse must not pass.
		{"https://files.example.com/a#b#c", false},
		{"https://files.example.com/fw[1].bin", false},
		{"https://files.example.com/fw?x=[1]", false},
		{"http://[fe80::1%25en0]/x", false},
		{"http://us[er@host/x", false},
		{"http://[::1]]/x", false},
		{"http://[::1]:8080/x", true},
		{"https://files.example.com/fw%5B1%5D.bin", true},
	} {
		if got := isURI(tc.in); got != tc.want {
			t.Errorf("isURI(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestFormatCheckerAllocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { isDateTime("2024-05-01T10:00:00.123+02:00") }); n != 0 {
		t.Errorf("isDateTime allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { isURI("ftp://user:pw@[2001:db8::1]:21/diag/%20x?a#b") }); n != 0 {
		t.Errorf("isURI allocates %v times", n)
	}
}

// isURIWithNetURL is isURI as it was before hostOK: its character checks, then url.Parse.
func isURIWithNetURL(s string) bool {
	_, ok := uriSyntax(s)
	_, err := url.Parse(s)
	return ok && err == nil
}

var uriSeeds = []string{
	"ftp://user:secret@files.example.com/uploads/", "https://example.com/fw.bin?x=1%20y#frag",
	"ftp://[2001:db8::1]:21/diag/", "http://[::1]:8080/x", "http://[::ffff:1.2.3.4]/", "http://[1.2.3.4]/",
	"http://[::1]x/", "http://[::1]:/", "http://[:::1]/", "http://[::1:]/", "http://[0::0:0:0:0:0:0:0]/",
	"http://a:1:2/", "ftp://a:1:2/", "ftp://a:b:2/", "HTTP://a:1:2/", "http://a:/", "http://:80/", "http://a:8x/",
	"http://h%41/", "http://h%c3%a9/", "http://h%25/", "http://h%7e/", "http://h%80/", "http://u%41@h/",
	"http://u@h@g:1/", "http://u:p@[::1]:1/", "sftp://host:2222/a/b", "file:///var/log/x", "urn:isbn:0451450523",
	"mailto:a@b", "x:/a:b", "x://", "x://@", "x://a?b:c", "x://a#b:c", "x://a/b:c", "x:?//a:b", "a+b.c-d://h:1/",
}

func TestURIMatchesNetURL(t *testing.T) {
	t.Parallel()
	for _, s := range uriSeeds {
		if got, want := isURI(s), isURIWithNetURL(s); got != want {
			t.Errorf("isURI(%q) = %v, url.Parse says %v", s, got, want)
		}
	}
}

// FuzzURIMatchesNetURL holds isURI, which checks hosts itself so as not to allocate, to the
// url.Parse-based check it replaced.
func FuzzURIMatchesNetURL(f *testing.F) {
	for _, s := range uriSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isURI(s), isURIWithNetURL(s); got != want {
			t.Fatalf("isURI(%q) = %v, url.Parse says %v", s, got, want)
		}
	})
}
