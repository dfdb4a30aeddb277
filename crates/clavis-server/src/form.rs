//! `application/x-www-form-urlencoded` decoding, shared by the token endpoint's body and query
//! strings: `+` and `%20` are spaces, and the result must be valid UTF-8 (never replaced lossily:
//! a mangled secret must not look like text).

/// Decodes one component; `None` for a broken escape or invalid UTF-8.
pub fn decode(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.next().and_then(|b| char::from(*b).to_digit(16))?;
                let low = bytes.next().and_then(|b| char::from(*b).to_digit(16))?;
                out.push((high * 16 + low) as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8(out).ok()
}

/// Splits a query string or form body into decoded pairs; pairs that do not decode are skipped.
pub fn pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    raw.split('&').filter(|p| !p.is_empty()).filter_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        Some((decode(key.as_bytes())?, decode(value.as_bytes())?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strictly() {
        assert_eq!(decode(b"a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(decode(b"%7E~"), Some("~~".to_string()));
        assert_eq!(decode(b"%F"), None);
        assert_eq!(decode(b"%FF"), None);
        let collected: Vec<(String, String)> = pairs("api%2Dversion=7.6&bad=%ZZ&x").collect();
        assert_eq!(collected, vec![("api-version".to_string(), "7.6".to_string()), ("x".to_string(), String::new())]);
    }
}
