//! A strict JSON cursor for the fast paths of reading Singer and normalizing records.
//!
//! It accepts a subset of what `serde_json` accepts and reads it the same way; anything
//! outside that subset (an escaped key, a lone surrogate, a number no 64-bit type holds,
//! deep nesting) is a [`Bail`], and the caller falls back to `serde_json`, which then
//! decides — with its own error messages. So the fast path can only be faster, never
//! different.

use std::borrow::Cow;

/// "Not on the fast path": the caller redoes the work with `serde_json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

/// A step of the fast path: its value, or [`Bail`].
pub type Fast<T> = Result<T, Bail>;

/// Nesting deeper than this bails (`serde_json` stops at 128).
pub const MAX_DEPTH: usize = 100;

/// A JSON number as written, and the value `serde_json` would read from it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer that fits `i64`.
    I64(i64),
    /// A positive integer above `i64::MAX`.
    U64(u64),
    /// Any other number.
    F64(f64),
}

/// A position in a JSON text.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

const fn repeat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The lowest byte of `w` that ends a plain run of string text (`"`, `\` or a control
/// character) has its high bit set in the result; bytes above it may be false positives.
#[inline]
fn specials(w: u64) -> u64 {
    const LOW: u64 = repeat(0x01);
    const HIGH: u64 = repeat(0x80);
    let quote = w ^ repeat(b'"');
    let backslash = w ^ repeat(b'\\');
    let control = w.wrapping_sub(repeat(0x20)) & !w;
    ((quote.wrapping_sub(LOW) & !quote) | (backslash.wrapping_sub(LOW) & !backslash) | control)
        & HIGH
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `text`.
    pub fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    /// The byte offset it is at.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The text between two positions.
    pub fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next byte that is not white space, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `b` if it comes next (after white space).
    #[inline]
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Steps over byte `b` (after whitespace), or bails.
    #[inline]
    pub fn expect(&mut self, b: u8) -> Fast<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Only white space is left.
    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos == self.bytes.len()
    }

    /// Moves to the end of the plain text of a string: the next `"`, `\` or control byte.
    #[inline]
    fn scan_plain(&mut self) {
        let bytes = self.bytes;
        let mut pos = self.pos;
        while pos + 8 <= bytes.len() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[pos..pos + 8]);
            let hits = specials(u64::from_le_bytes(word));
            if hits != 0 {
                self.pos = pos + (hits.trailing_zeros() / 8) as usize;
                return;
            }
            pos += 8;
        }
        while let Some(&b) = bytes.get(pos) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            pos += 1;
        }
        self.pos = pos;
    }

    /// A string without escapes, borrowed (a key, a stream name); escapes bail.
    #[inline]
    pub fn plain_string(&mut self) -> Fast<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        self.scan_plain();
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(Bail);
        }
        let s = &self.text[start..self.pos];
        self.pos += 1;
        Ok(s)
    }

    /// A string, borrowed when it has no escapes.
    #[inline]
    pub fn string(&mut self) -> Fast<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        self.scan_plain();
        match self.bytes.get(self.pos) {
            Some(b'"') => {
                let s = &self.text[start..self.pos];
                self.pos += 1;
                Ok(Cow::Borrowed(s))
            }
            Some(b'\\') => {
                let mut out = String::with_capacity(self.pos - start + 16);
                out.push_str(&self.text[start..self.pos]);
                self.unescape_rest(&mut out)?;
                Ok(Cow::Owned(out))
            }
            _ => Err(Bail),
        }
    }

    /// Continues a string at a backslash, appending its text to `out`, through the
    /// closing quote.
    fn unescape_rest(&mut self, out: &mut String) -> Fast<()> {
        loop {
            match self.bytes.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    let escaped = *self.bytes.get(self.pos + 1).ok_or(Bail)?;
                    self.pos += 2;
                    out.push(match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(Bail),
                    });
                }
                Some(_) => {
                    let start = self.pos;
                    self.scan_plain();
                    if start == self.pos {
                        return Err(Bail); // a control character
                    }
                    out.push_str(&self.text[start..self.pos]);
                }
                None => return Err(Bail),
            }
        }
    }

    /// The four hex digits after `\u`; surrogates (pairs included) bail.
    fn unicode_escape(&mut self) -> Fast<char> {
        let hex = self.bytes.get(self.pos..self.pos + 4).ok_or(Bail)?;
        let mut code = 0u32;
        for &h in hex {
            code = code * 16 + (h as char).to_digit(16).ok_or(Bail)?;
        }
        self.pos += 4;
        char::from_u32(code).ok_or(Bail)
    }

    /// Validates a string and moves past it (allocating only for one with escapes,
    /// which keys and skipped values rarely have).
    fn skip_string(&mut self) -> Fast<()> {
        self.string().map(|_| ())
    }

    /// A number, checked against JSON's grammar.
    #[inline]
    pub fn number(&mut self) -> Fast<Number> {
        self.skip_ws();
        let bytes = self.bytes;
        let start = self.pos;
        let mut pos = start;
        let negative = bytes.get(pos) == Some(&b'-');
        if negative {
            pos += 1;
        }
        let digits = pos;
        let mut value: u64 = 0;
        let mut overflow = false;
        match bytes.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(&d @ b'0'..=b'9') = bytes.get(pos) {
                    match value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(d - b'0')))
                    {
                        Some(v) => value = v,
                        None => overflow = true,
                    }
                    pos += 1;
                }
            }
            _ => return Err(Bail),
        }
        let mut float = false;
        if bytes.get(pos) == Some(&b'.') {
            float = true;
            pos += 1;
            let first = pos;
            while matches!(bytes.get(pos), Some(b'0'..=b'9')) {
                pos += 1;
            }
            if pos == first {
                return Err(Bail);
            }
        }
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            float = true;
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            let first = pos;
            while matches!(bytes.get(pos), Some(b'0'..=b'9')) {
                pos += 1;
            }
            if pos == first {
                return Err(Bail);
            }
        }
        self.pos = pos;
        if float {
            let f: f64 = self.text[start..pos].parse().map_err(|_| Bail)?;
            return if f.is_finite() {
                Ok(Number::F64(f))
            } else {
                Err(Bail)
            };
        }
        if overflow || pos == digits {
            return Err(Bail);
        }
        if negative {
            if value == 0 {
                Ok(Number::F64(-0.0)) // serde_json reads "-0" as a float
            } else if value <= i64::MAX as u64 + 1 {
                Ok(Number::I64((value as i64).wrapping_neg()))
            } else {
                Err(Bail)
            }
        } else if let Ok(v) = i64::try_from(value) {
            Ok(Number::I64(v))
        } else {
            Ok(Number::U64(value))
        }
    }

    /// Consumes the literal `word` (`true`, `false`, `null`) if it comes next.
    #[inline]
    pub fn literal(&mut self, word: &[u8]) -> bool {
        self.skip_ws();
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Validates any value and moves past it; returns where it started.
    pub fn skip_value(&mut self, depth: usize) -> Fast<usize> {
        let start = match self.peek() {
            Some(_) => self.pos,
            None => return Err(Bail),
        };
        let first = self.bytes[self.pos];
        match first {
            b'"' => self.skip_string()?,
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(Bail);
                }
                self.pos += 1;
                if !self.eat(b'}') {
                    loop {
                        if self.peek() != Some(b'"') {
                            return Err(Bail);
                        }
                        self.skip_string()?;
                        self.expect(b':')?;
                        self.skip_value(depth + 1)?;
                        if !self.eat(b',') {
                            self.expect(b'}')?;
                            break;
                        }
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Bail);
                }
                self.pos += 1;
                if !self.eat(b']') {
                    loop {
                        self.skip_value(depth + 1)?;
                        if !self.eat(b',') {
                            self.expect(b']')?;
                            break;
                        }
                    }
                }
            }
            b't' | b'f' | b'n' => {
                let word: &[u8] = match first {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !self.literal(word) {
                    return Err(Bail);
                }
            }
            _ => {
                self.number()?;
            }
        }
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(text: &str) -> bool {
        let mut c = Cursor::new(text);
        c.skip_value(0).is_ok() && c.at_end()
    }

    #[test]
    fn reads_what_serde_json_reads_and_bails_on_the_rest() {
        let valid = [
            r#"{"a":[1,-2,3.5,1e3,-0,0.25E-2,true,false,null,"x\n\u00e9\/"],"b":{}}"#,
            " [ ] ",
            r#""""#,
            "-9223372036854775808",
            "18446744073709551615",
        ];
        for text in valid {
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
            assert!(skips(text), "{text}");
        }
        // Invalid JSON, and valid JSON outside the fast path, both bail.
        let bail = [
            "{\"a\":1,}",
            "[1 2]",
            "01",
            "1.",
            "-",
            "1e",
            "\"tab\there\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "{a:1}",
            "tru",
            "1e999",
            "18446744073709551616",
            "-9223372036854775809",
        ];
        for text in bail {
            assert!(!skips(text), "{text}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(!skips(&deep));
    }

    #[test]
    fn numbers_are_read_as_serde_json_reads_them() {
        for text in [
            "0",
            "-0",
            "42",
            "-17",
            "3.25",
            "1e3",
            "-2.5E-3",
            "9223372036854775807",
            "9223372036854775808",
            "0.1",
            "123456789.123456789",
        ] {
            let ours = Cursor::new(text).number().unwrap();
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            let same = match ours {
                Number::I64(i) => theirs.as_i64() == Some(i) && theirs.is_i64(),
                Number::U64(u) => theirs.as_u64() == Some(u) && !theirs.is_i64(),
                Number::F64(f) => {
                    theirs.as_f64().map(f64::to_bits) == Some(f.to_bits()) && theirs.is_f64()
                }
            };
            assert!(same, "{text}: {ours:?} vs {theirs:?}");
        }
    }

    #[test]
    fn strings_unescape_as_serde_json_does() {
        for text in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e9\u4e2d é""#,
            r#""long text with no escapes at all, more than eight bytes""#,
        ] {
            let ours = Cursor::new(text).string().unwrap();
            let theirs: String = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs);
        }
        assert!(Cursor::new(r#""a\u0000b""#).string().is_ok());
        assert!(Cursor::new("\"raw\u{1}control\"").string().is_err());
        assert_eq!(Cursor::new(r#""k\"""#).plain_string(), Err(Bail));
    }
}
