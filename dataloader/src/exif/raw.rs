//! Raw tag values, stored the way metadata-extractor stores them after reading a TIFF
//! entry, with its conversions between types.
//!
//! metadata-extractor keeps a single-count entry as a scalar (`Integer`, `Long`,
//! `Rational`, `Float`) and a multi-count entry as an array, ASCII as a string cut at the
//! first NUL and UNDEFINED as a byte array. Its descriptions then ask for the value as an
//! int, a rational, an int array... and get `null` when the stored type does not convert;
//! these accessors reproduce those conversions so that the descriptions agree with it on
//! odd files too.

use super::javafmt;

/// A rational number as stored in a TIFF entry (signed or unsigned, widened to `i64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rational {
    pub num: i64,
    pub den: i64,
}

impl Rational {
    /// The value as a double (`0.0` when the numerator is zero, as metadata-extractor does).
    pub fn to_f64(self) -> f64 {
        if self.num == 0 {
            0.0
        } else {
            self.num as f64 / self.den as f64
        }
    }

    /// The value as a float, computed in single precision.
    pub fn to_f32(self) -> f32 {
        if self.num == 0 {
            0.0
        } else {
            self.num as f32 / self.den as f32
        }
    }

    /// Truncated integer value (saturating, like a Java `(int)` cast of the double).
    pub fn int_value(self) -> i32 {
        self.to_f64() as i32
    }

    /// Whether the rational is an integer (metadata-extractor's `isInteger`).
    pub fn is_integer(self) -> bool {
        self.den == 1
            || (self.den != 0 && self.num % self.den == 0)
            || (self.den == 0 && self.num == 0)
    }

    /// Zero numerator or zero denominator.
    pub fn is_zero(self) -> bool {
        self.num == 0 || self.den == 0
    }

    /// `num/den` with the sign moved to the numerator.
    pub fn plain(self) -> String {
        if self.den < 0 {
            format!("{}/{}", -self.num, -self.den)
        } else {
            format!("{}/{}", self.num, self.den)
        }
    }

    /// The reduced fraction.
    pub fn simplified(self) -> Rational {
        let (mut n, mut d) = (self.num, self.den);
        if d < 0 {
            n = -n;
            d = -d;
        }
        let g = gcd(n.unsigned_abs(), d.unsigned_abs()) as i64;
        if g == 0 {
            return Rational { num: n, den: d };
        }
        Rational {
            num: n / g,
            den: d / g,
        }
    }

    /// metadata-extractor's `toSimpleString`: an integer when it is one, a short decimal
    /// (`0.5`, fewer than five characters) when allowed, otherwise the reduced fraction.
    pub fn simple_string(self, allow_decimal: bool) -> String {
        if self.den == 0 && self.num != 0 {
            return self.plain();
        }
        if self.is_integer() {
            return self.int_value().to_string();
        }
        let s = self.simplified();
        if allow_decimal {
            let d = javafmt::double_to_string(s.to_f64());
            if d.chars().count() < 5 {
                return d;
            }
        }
        s.plain()
    }

    /// Numeric equality (metadata-extractor compares rationals by their double value).
    pub fn same_value(self, other: Rational) -> bool {
        self.to_f64() == other.to_f64()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while a != 0 && b != 0 {
        if a > b {
            a %= b;
        } else {
            b %= a;
        }
    }
    if a == 0 {
        b
    } else {
        a
    }
}

/// One tag's value, typed as metadata-extractor stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    /// ASCII: the bytes up to the first NUL.
    Str(Vec<u8>),
    /// UNDEFINED (any count) and multi-count SBYTE: a Java `byte[]`.
    Bytes(Vec<u8>),
    /// A single integer of any integer type.
    Int(i64),
    /// Several integers (BYTE, SHORT, SSHORT, LONG, SLONG arrays).
    Ints(Vec<i64>),
    /// A single rational.
    Rational(Rational),
    /// Several rationals.
    Rationals(Vec<Rational>),
    /// A single float.
    Float(f32),
    /// Several floats.
    Floats(Vec<f32>),
    /// A single double.
    Double(f64),
    /// Several doubles.
    Doubles(Vec<f64>),
}

impl Raw {
    /// Converts a parsed kamadak-exif value; `None` for values of unknown type or with no
    /// content that metadata-extractor would not store either.
    pub fn from_exif(value: &exif::Value) -> Option<Raw> {
        use exif::Value as V;
        fn ints<T: Copy + Into<i64>>(v: &[T]) -> Option<Raw> {
            match v {
                [x] => Some(Raw::Int((*x).into())),
                _ => Some(Raw::Ints(v.iter().map(|&x| x.into()).collect())),
            }
        }
        fn rationals(v: Vec<Rational>) -> Option<Raw> {
            match v.as_slice() {
                [] => None,
                [r] => Some(Raw::Rational(*r)),
                _ => Some(Raw::Rationals(v)),
            }
        }
        match value {
            V::Ascii(parts) => Some(Raw::Str(parts.first().cloned().unwrap_or_default())),
            V::Undefined(bytes, _) => Some(Raw::Bytes(bytes.clone())),
            V::Byte(v) => ints(v),
            V::SByte(v) => match v.as_slice() {
                [x] => Some(Raw::Int(i64::from(*x))),
                _ => Some(Raw::Bytes(v.iter().map(|&b| b as u8).collect())),
            },
            V::Short(v) => ints(v),
            V::SShort(v) => ints(v),
            V::Long(v) => ints(v),
            V::SLong(v) => ints(v),
            V::Rational(v) => rationals(
                v.iter()
                    .map(|r| Rational {
                        num: r.num.into(),
                        den: r.denom.into(),
                    })
                    .collect(),
            ),
            V::SRational(v) => rationals(
                v.iter()
                    .map(|r| Rational {
                        num: r.num.into(),
                        den: r.denom.into(),
                    })
                    .collect(),
            ),
            V::Float(v) => match v.as_slice() {
                [x] => Some(Raw::Float(*x)),
                _ => Some(Raw::Floats(v.clone())),
            },
            V::Double(v) => match v.as_slice() {
                [x] => Some(Raw::Double(*x)),
                _ => Some(Raw::Doubles(v.clone())),
            },
            V::Unknown(..) => None,
        }
    }

    /// Number of elements when the value is an array (strings and scalars are not).
    pub fn array_len(&self) -> Option<usize> {
        match self {
            Raw::Bytes(v) => Some(v.len()),
            Raw::Ints(v) => Some(v.len()),
            Raw::Rationals(v) => Some(v.len()),
            Raw::Floats(v) => Some(v.len()),
            Raw::Doubles(v) => Some(v.len()),
            _ => None,
        }
    }

    /// metadata-extractor's `getString`: the raw value as text (arrays space-separated).
    pub fn string(&self) -> String {
        fn join<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
            v.iter().map(f).collect::<Vec<_>>().join(" ")
        }
        let float = |x: f64| {
            let s = javafmt::decimal(x, 0, 3, javafmt::Rounding::HalfEven);
            if s == "-0" {
                "0".to_string()
            } else {
                s
            }
        };
        match self {
            Raw::Str(b) => javafmt::decode_default(b),
            Raw::Bytes(v) => join(v, |b| b.to_string()),
            Raw::Int(i) => i.to_string(),
            Raw::Ints(v) => join(v, |i| i.to_string()),
            Raw::Rational(r) => r.simple_string(true),
            Raw::Rationals(v) => join(v, |r| r.plain()),
            Raw::Float(x) => javafmt::decimal(f64::from(*x), 0, 3, javafmt::Rounding::HalfEven),
            Raw::Floats(v) => join(v, |x| float(f64::from(*x))),
            Raw::Double(x) => javafmt::decimal(*x, 0, 3, javafmt::Rounding::HalfEven),
            Raw::Doubles(v) => join(v, |x| float(*x)),
        }
    }

    /// `getLongObject`: the value as a long, if it is (or holds exactly) one number.
    pub fn long(&self) -> Option<i64> {
        match self {
            Raw::Int(i) => Some(*i),
            Raw::Rational(r) => Some(r.to_f64() as i64),
            Raw::Float(x) => Some(*x as i64),
            Raw::Double(x) => Some(*x as i64),
            Raw::Str(b) => {
                let s = javafmt::decode_default(b);
                Some(s.parse::<i64>().unwrap_or_else(|_| {
                    s.bytes().fold(0i64, |acc, b| {
                        acc.wrapping_shl(8).wrapping_add(i64::from(b))
                    })
                }))
            }
            Raw::Rationals(v) if v.len() == 1 => Some(v[0].to_f64() as i64),
            Raw::Bytes(v) if v.len() == 1 => Some(i64::from(v[0] as i8)),
            Raw::Ints(v) if v.len() == 1 => Some(v[0]),
            _ => None,
        }
    }

    /// `getInteger`: like [`Raw::long`] truncated to 32 bits.
    pub fn integer(&self) -> Option<i32> {
        match self {
            Raw::Rational(r) => Some(r.int_value()),
            Raw::Float(x) => Some(*x as i32),
            Raw::Double(x) => Some(*x as i32),
            Raw::Str(b) => {
                let s = javafmt::decode_default(b);
                Some(s.parse::<i32>().unwrap_or_else(|_| {
                    s.bytes().fold(0i64, |acc, b| {
                        acc.wrapping_shl(8).wrapping_add(i64::from(b))
                    }) as i32
                }))
            }
            Raw::Rationals(v) if v.len() == 1 => Some(v[0].int_value()),
            other => other.long().map(|v| v as i32),
        }
    }

    /// `getRational`: a single rational or integer.
    pub fn rational(&self) -> Option<Rational> {
        match self {
            Raw::Rational(r) => Some(*r),
            Raw::Int(i) => Some(Rational { num: *i, den: 1 }),
            _ => None,
        }
    }

    /// `getRationalArray`: only a stored array of rationals.
    pub fn rationals(&self) -> Option<&[Rational]> {
        match self {
            Raw::Rationals(v) => Some(v),
            _ => None,
        }
    }

    /// `getDoubleObject`: a single number (or a string that parses as one).
    pub fn double(&self) -> Option<f64> {
        match self {
            Raw::Int(i) => Some(*i as f64),
            Raw::Rational(r) => Some(r.to_f64()),
            Raw::Float(x) => Some(f64::from(*x)),
            Raw::Double(x) => Some(*x),
            Raw::Str(b) => javafmt::decode_default(b).trim().parse().ok(),
            _ => None,
        }
    }

    /// `getFloatObject`: a single number as a float.
    pub fn float(&self) -> Option<f32> {
        match self {
            Raw::Int(i) => Some(*i as f32),
            Raw::Rational(r) => Some(r.to_f32()),
            Raw::Float(x) => Some(*x),
            Raw::Double(x) => Some(*x as f32),
            Raw::Str(b) => javafmt::decode_default(b).trim().parse().ok(),
            _ => None,
        }
    }

    /// `getIntArray`: the value as 32-bit integers (bytes are signed, as in Java).
    pub fn int_array(&self) -> Option<Vec<i32>> {
        match self {
            Raw::Ints(v) => Some(v.iter().map(|&i| i as i32).collect()),
            Raw::Rationals(v) => Some(v.iter().map(|r| r.int_value()).collect()),
            Raw::Bytes(v) => Some(v.iter().map(|&b| i32::from(b as i8)).collect()),
            Raw::Str(b) => Some(
                javafmt::decode_default(b)
                    .encode_utf16()
                    .map(i32::from)
                    .collect(),
            ),
            Raw::Int(i) => Some(vec![*i as i32]),
            _ => None,
        }
    }

    /// `getByteArray`: the value as bytes.
    pub fn byte_array(&self) -> Option<Vec<u8>> {
        match self {
            Raw::Str(b) => Some(b.clone()),
            Raw::Bytes(v) => Some(v.clone()),
            Raw::Ints(v) => Some(v.iter().map(|&i| i as u8).collect()),
            Raw::Rationals(v) => Some(v.iter().map(|r| r.to_f64() as i64 as u8).collect()),
            Raw::Int(i) => Some(vec![*i as u8]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(num: i64, den: i64) -> Rational {
        Rational { num, den }
    }

    #[test]
    fn simple_string_prefers_integers_short_decimals_then_fractions() {
        assert_eq!(r(10, 1).simple_string(true), "10");
        assert_eq!(r(20, 10).simple_string(true), "2");
        assert_eq!(r(1, 2).simple_string(true), "0.5");
        assert_eq!(r(10, 600).simple_string(true), "1/60");
        assert_eq!(r(1, 3).simple_string(true), "1/3");
        assert_eq!(r(-2, 6).simple_string(true), "-1/3");
        assert_eq!(r(3, 100).simple_string(true), "0.03");
        assert_eq!(r(1, 2).simple_string(false), "1/2");
        assert_eq!(r(5, 0).simple_string(true), "5/0");
        assert_eq!(r(0, 0).simple_string(true), "0");
    }

    #[test]
    fn single_values_are_scalars_and_conversions_follow_java() {
        let one = Raw::from_exif(&exif::Value::Short(vec![3])).unwrap();
        assert_eq!(one, Raw::Int(3));
        assert_eq!(one.rational(), Some(r(3, 1)));
        let many = Raw::from_exif(&exif::Value::Short(vec![3, 4])).unwrap();
        assert_eq!(many.integer(), None);
        assert_eq!(many.string(), "3 4");
        let ver = Raw::Bytes(b"0230".to_vec());
        assert_eq!(ver.int_array(), Some(vec![48, 50, 51, 48]));
        assert_eq!(Raw::Bytes(vec![0xff]).integer(), Some(-1));
        assert_eq!(Raw::Str(b"42".to_vec()).integer(), Some(42));
    }
}
