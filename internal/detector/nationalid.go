package detector

// National identity numbers whose format carries a check digit, so that a
// match is more than a coincidence of digits:
//
//	Spain       DNI 12345678Z, NIE X1234567L      mod-23 letter
//	Sweden      personnummer 811218-9876           Luhn, written with - or +
//	Finland     henkilötunnus 131052-308T          mod-31 character
//	Norway      fødselsnummer 11 digits            two mod-11 digits
//	China       resident id 18 characters          ISO 7064 MOD 11-2
//	India       Aadhaar 1234 5678 9012             Verhoeff (grouped only:
//	                                               twelve bare digits are
//	                                               too common)
//	France      NIR 15 digits                      97 − (n mod 97)
//	Brazil      CPF 123.456.789-09                 two mod-11 digits
//
// Numbers without a check digit (US SSN, UK NINO) are not detected: any
// nine digits would do. An operator pattern can catch them where their
// context makes them recognisable.

// digitsVal is the number the ASCII digits of s form (s is short).
func digitsVal(s string) int {
	v := 0
	for i := 0; i < len(s); i++ {
		v = v*10 + int(s[i]-'0')
	}
	return v
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// plausibleDate reports whether dd and mm (two digits each) can be a day
// and a month.
func plausibleDate(dd, mm string) bool {
	d, m := digitsVal(dd), digitsVal(mm)
	return d >= 1 && d <= 31 && m >= 1 && m <= 12
}

// fixedNationalID checks the numbers written in a fixed shape that starts
// with a digit at i (Spanish DNI, Swedish and Finnish ids) and returns the
// end of the one found.
func fixedNationalID(s string, i int) (int, bool) {
	if end, ok := spanishDNI(s, i); ok {
		return end, true
	}
	if end, ok := swedishID(s, i); ok {
		return end, true
	}
	return finnishID(s, i)
}

const dniLetters = "TRWAGMYFPDXBNJZSQVHLCKE"

// spanishDNI: eight digits, an optional '-', the check letter.
func spanishDNI(s string, i int) (int, bool) {
	if i+9 > len(s) || !allDigits(s[i:i+8]) {
		return 0, false
	}
	j := i + 8
	if s[j] == '-' {
		j++
	}
	if j >= len(s) || !boundaryAfter(s, j+1) || s[j] != dniLetters[digitsVal(s[i:i+8])%23] {
		return 0, false
	}
	return j + 1, true
}

// spanishNIE: X, Y or Z (read as 0, 1, 2), seven digits, an optional '-',
// the check letter.
func spanishNIE(s string, i int) (int, bool) {
	if i+9 > len(s) || !allDigits(s[i+1:i+8]) {
		return 0, false
	}
	j := i + 8
	if s[j] == '-' {
		j++
	}
	if j >= len(s) || !boundaryAfter(s, j+1) {
		return 0, false
	}
	n := int(s[i]-'X')*10_000_000 + digitsVal(s[i+1:i+8])
	if s[j] != dniLetters[n%23] {
		return 0, false
	}
	return j + 1, true
}

// swedishID: YYMMDD or YYYYMMDD, '-' or '+', four digits; Luhn over the
// ten digits YYMMDDNNNN. Coordination numbers add 60 to the day.
func swedishID(s string, i int) (int, bool) {
	for _, n := range []int{6, 8} {
		j := i + n
		if j+5 > len(s) || !allDigits(s[i:j]) || (s[j] != '-' && s[j] != '+') || !allDigits(s[j+1:j+5]) || !boundaryAfter(s, j+5) {
			continue
		}
		date := s[j-6 : j]
		day := digitsVal(date[4:6])
		if day > 60 {
			day -= 60
		}
		if day < 1 || day > 31 || digitsVal(date[2:4]) < 1 || digitsVal(date[2:4]) > 12 {
			continue
		}
		var d [10]byte
		copy(d[:6], date)
		copy(d[6:], s[j+1:j+5])
		if luhn(d[:]) {
			return j + 5, true
		}
	}
	return 0, false
}

const (
	finnishCentury = "+-ABCDEFUVWXY"
	finnishCheck   = "0123456789ABCDEFHJKLMNPRSTUVWXY"
)

// finnishID: DDMMYY, the century sign, three digits, the check character
// (DDMMYYNNN mod 31).
func finnishID(s string, i int) (int, bool) {
	if i+11 > len(s) || !allDigits(s[i:i+6]) || !allDigits(s[i+7:i+10]) || !boundaryAfter(s, i+11) {
		return 0, false
	}
	if !contains(finnishCentury, s[i+6]) || !plausibleDate(s[i:i+2], s[i+2:i+4]) {
		return 0, false
	}
	n := digitsVal(s[i:i+6])*1000 + digitsVal(s[i+7:i+10])
	if s[i+10] != finnishCheck[n%31] {
		return 0, false
	}
	return i + 11, true
}

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

// groupedNationalID checks a written number (its digit groups) for the
// numeric ids and returns the end of the one found.
func groupedNationalID(s string, groups []group) (int, bool) {
	first, last := groups[0], groups[len(groups)-1]
	lens := make([]int, 0, 8)
	for _, g := range groups {
		lens = append(lens, g.len())
		if len(lens) == cap(lens) {
			break
		}
	}
	whole := len(groups) == 1
	switch {
	case whole && first.len() == 11 && boundaryAfter(s, first.end) && norwegianID(s[first.start:first.end]):
		return first.end, true
	case whole && first.len() == 18 && boundaryAfter(s, first.end) && chineseID(s[first.start:first.end]):
		return first.end, true
	case whole && first.len() == 17 && first.end < len(s) && (s[first.end] == 'X' || s[first.end] == 'x') &&
		boundaryAfter(s, first.end+1) && chineseID(s[first.start:first.end+1]):
		return first.end + 1, true
	}
	if !boundaryAfter(s, last.end) {
		return 0, false
	}
	digits := func(n int) []byte {
		out := make([]byte, 0, n)
		for _, g := range groups {
			out = append(out, s[g.start:g.end]...)
		}
		return out
	}
	switch {
	case shape(lens, 4, 4, 4) && seps(s, groups, ' '):
		if d := digits(12); d[0] >= '2' && verhoeff(d) {
			return last.end, true
		}
	case shape(lens, 15) || shape(lens, 1, 2, 2, 2, 3, 3, 2) && seps(s, groups, ' '):
		if frenchNIR(digits(15)) {
			return last.end, true
		}
	case shape(lens, 3, 3, 3, 2) && s[groups[0].end] == '.' && s[groups[1].end] == '.' && s[groups[2].end] == '-':
		if brazilianCPF(digits(11)) {
			return last.end, true
		}
	}
	return 0, false
}

// shape reports whether the group lengths are exactly want.
func shape(lens []int, want ...int) bool {
	if len(lens) != len(want) {
		return false
	}
	for i := range want {
		if lens[i] != want[i] {
			return false
		}
	}
	return true
}

// seps reports whether every separator between the groups is c.
func seps(s string, groups []group, c byte) bool {
	for _, g := range groups[:len(groups)-1] {
		if s[g.end] != c {
			return false
		}
	}
	return true
}

// norwegianID: DDMMYYIIIKK; D-numbers add 40 to the day; K1 and K2 are
// mod-11 check digits.
func norwegianID(d string) bool {
	day := digitsVal(d[0:2])
	if day > 40 {
		day -= 40
	}
	if day < 1 || day > 31 || digitsVal(d[2:4]) < 1 || digitsVal(d[2:4]) > 12 {
		return false
	}
	check := func(w []int) int {
		sum := 0
		for i, x := range w {
			sum += x * int(d[i]-'0')
		}
		k := 11 - sum%11
		if k == 11 {
			k = 0
		}
		return k
	}
	k1 := check([]int{3, 7, 6, 1, 8, 9, 4, 5, 2})
	k2 := check([]int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2})
	return k1 < 10 && k2 < 10 && int(d[9]-'0') == k1 && int(d[10]-'0') == k2
}

// chineseID: 17 digits (region, birth date YYYYMMDD, sequence) and an
// ISO 7064 MOD 11-2 check character (a digit or X).
func chineseID(d string) bool {
	if d[0] == '0' {
		return false
	}
	year := digitsVal(d[6:10])
	if year < 1880 || year > 2099 || !plausibleDate(d[12:14], d[10:12]) {
		return false
	}
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += w * int(d[i]-'0')
	}
	check := "10X98765432"[sum%11]
	last := d[17]
	if last == 'x' {
		last = 'X'
	}
	return last == check
}

// frenchNIR: sex (1 or 2), year, month, place, order, and a key of
// 97 − (first 13 digits mod 97).
func frenchNIR(d []byte) bool {
	if d[0] != '1' && d[0] != '2' {
		return false
	}
	if m := digitsVal(string(d[3:5])); m < 1 || m > 12 && m < 20 {
		return false
	}
	r := 0
	for _, c := range d[:13] {
		r = (r*10 + int(c-'0')) % 97
	}
	return 97-r == digitsVal(string(d[13:15]))
}

// brazilianCPF: nine digits and two mod-11 check digits; numbers of one
// repeated digit are invalid.
func brazilianCPF(d []byte) bool {
	same := true
	for _, c := range d[1:] {
		if c != d[0] {
			same = false
		}
	}
	if same {
		return false
	}
	check := func(n int) int {
		sum := 0
		for i := 0; i < n; i++ {
			sum += int(d[i]-'0') * (n + 1 - i)
		}
		k := sum * 10 % 11
		if k == 10 {
			k = 0
		}
		return k
	}
	return check(9) == int(d[9]-'0') && check(10) == int(d[10]-'0')
}

// Verhoeff's dihedral-group check, used by Aadhaar.
var (
	verhoeffD = [10][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
		{2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
		{4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
		{8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
		{5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
		{9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

// verhoeff reports whether the last digit of d is its Verhoeff check digit.
func verhoeff(d []byte) bool {
	c := byte(0)
	for i := 0; i < len(d); i++ {
		c = verhoeffD[c][verhoeffP[i%8][d[len(d)-1-i]-'0']]
	}
	return c == 0
}
