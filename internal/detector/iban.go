package detector

// ibanLengths is the length of each country's IBAN (ISO 13616 registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
	"BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
	"EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
	"GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
	"IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
	"NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
	"SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// maxIBAN is the longest IBAN of any country.
const maxIBAN = 34

// ibans finds IBANs: a country code with its registered length, in upper
// case, whole or in groups separated by single spaces, whose mod-97 check
// (ISO 7064) holds.
func (p *pii) ibans() bool {
	s := p.s
	var buf [maxIBAN]byte
	for i := 0; i+4 <= len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || !boundaryBefore(s, i) {
			continue
		}
		want := ibanLengths[s[i:i+2]]
		if want == 0 {
			continue
		}
		n, j := 0, i
		for j < len(s) && n < want {
			c := s[j]
			if isUpper(c) || isDigit(c) {
				buf[n] = c
				n++
				j++
				continue
			}
			if c == ' ' && j+1 < len(s) && j > i && s[j-1] != ' ' {
				j++
				continue
			}
			break
		}
		if n != want || !boundaryAfter(s, j) || !mod97(buf[:n]) {
			continue
		}
		if !p.report("iban", i, j) {
			return false
		}
		i = j - 1
	}
	return true
}

// mod97 reports whether an IBAN (upper-case letters and digits) passes
// the ISO 7064 mod-97-10 check: its first four characters moved to the
// end, letters read as 10–35, the number modulo 97 is 1.
func mod97(iban []byte) bool {
	if len(iban) < 5 {
		return false
	}
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
			return
		}
		v := int(c-'A') + 10
		r = (r*100 + v) % 97
	}
	for _, c := range iban[4:] {
		add(c)
	}
	for _, c := range iban[:4] {
		add(c)
	}
	return r == 1
}
