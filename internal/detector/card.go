package detector

// Payment card numbers have 13 to 19 digits.
const (
	minCardDigits = 13
	maxCardDigits = 19
)

// paymentCard reports whether digits (ASCII) is a payment card number: a
// known issuer prefix with a length that issuer uses, and a valid Luhn
// check digit. The prefix test keeps most random 16-digit numbers (order
// ids, timestamps) out: the Luhn check alone passes one in ten.
func paymentCard(d []byte) bool {
	n := len(d)
	if n < minCardDigits || n > maxCardDigits || !issuerPrefix(d) {
		return false
	}
	return luhn(d)
}

// luhn reports whether the last digit of d is d's Luhn check digit.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// prefixNum is the number formed by the first k digits of d.
func prefixNum(d []byte, k int) int {
	v := 0
	for i := 0; i < k && i < len(d); i++ {
		v = v*10 + int(d[i]-'0')
	}
	return v
}

// issuerDigits is how many leading digits decide the card network.
const issuerDigits = 6

// anyIssuer reports whether the leading digits d (at least issuerDigits)
// start some network's prefix, whatever the number's length.
func anyIssuer(d []byte) bool {
	p6 := prefixNum(d, 6)
	p1, p2, p3, p4 := p6/100_000, p6/10_000, p6/1000, p6/100
	switch {
	case p1 == 4, p2 >= 50 && p2 <= 58, p4 >= 2221 && p4 <= 2720, p2 == 34 || p2 == 37,
		p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649, p2 == 62, p4 >= 3528 && p4 <= 3589,
		p2 == 36 || p2 == 38 || p2 == 39, p3 >= 300 && p3 <= 305, p2 == 63 || p2 == 67:
		return true
	}
	return false
}

// issuerPrefix reports whether d starts with the prefix of a major card
// network and has a length that network issues: Visa, Mastercard,
// American Express, Discover, JCB, Diners Club, UnionPay, Maestro.
func issuerPrefix(d []byte) bool {
	n := len(d)
	p1, p2, p4 := prefixNum(d, 1), prefixNum(d, 2), prefixNum(d, 4)
	p3, p6 := prefixNum(d, 3), prefixNum(d, 6)
	switch {
	case p1 == 4: // Visa
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		return n == 16
	case p2 == 34 || p2 == 37: // American Express
		return n == 15
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649, p6 >= 622126 && p6 <= 622925: // Discover
		return n >= 16
	case p4 >= 3528 && p4 <= 3589: // JCB
		return n >= 16
	case p2 == 36, p2 == 38, p2 == 39, p3 >= 300 && p3 <= 305: // Diners Club
		return n >= 14
	case p2 == 62: // UnionPay
		return n >= 16
	case p2 == 50, p2 >= 56 && p2 <= 58, p2 == 63, p2 == 67: // Maestro
		return n >= 12
	}
	return false
}
