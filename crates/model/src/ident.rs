//! Identifier normalization: what a JSON property or stream name becomes as a column or
//! table name in the warehouse.

use std::collections::HashMap;

/// Normalizes a name to lowercase snake_case made of `[a-z0-9_]`, not starting with a
/// digit, at most `max_len` bytes (an over-long name keeps a prefix and gets a short hash of
/// the whole original name, so distinct long names stay distinct).
///
/// ```
/// use observes_model::ident::normalize;
/// assert_eq!(normalize("createdAt", 63), "created_at");
/// assert_eq!(normalize("HTTPServer", 63), "http_server");
/// assert_eq!(normalize("web url (v2)", 63), "web_url_v2");
/// assert_eq!(normalize("2fa", 63), "_2fa");
/// ```
pub fn normalize(name: &str, max_len: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && i > 0 {
                let prev = chars[i - 1];
                let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                let boundary = prev.is_ascii_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_ascii_uppercase() && next_is_lower);
                if boundary && !out.ends_with('_') {
                    out.push('_');
                }
            }
            out.push(c.to_ascii_lowercase());
        } else if c == '_' {
            out.push('_');
        } else if !out.ends_with('_') && !out.is_empty() {
            // Every run of other characters (spaces, punctuation, non-ASCII) is one separator.
            out.push('_');
        }
    }
    // A separator made from trailing punctuation says nothing; a leading underscore the
    // source chose (`_id`) is kept.
    while out.ends_with('_') && !name.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push('_');
    }
    if out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    shorten(out, name, max_len)
}

/// Cuts `ident` to `max_len` bytes with a hash suffix of `original` when it is longer.
pub fn shorten(ident: String, original: &str, max_len: usize) -> String {
    if ident.len() <= max_len {
        return ident;
    }
    let suffix = format!("_{}", short_hash(original));
    let keep = max_len.saturating_sub(suffix.len());
    let mut cut = ident[..keep].to_string();
    while cut.ends_with('_') {
        cut.pop();
    }
    cut + &suffix
}

/// Eight hex digits that identify a string (stable across versions and machines).
pub fn short_hash(s: &str) -> String {
    format!("{:08x}", xxhash_rust::xxh3::xxh3_64(s.as_bytes()) as u32)
}

/// Hands out column names within one table: the first property to claim a normalized
/// name gets it, a later different property that normalizes the same way gets the name with
/// a hash of its own original, so the outcome depends only on the schema, never on data.
#[derive(Debug, Default, Clone)]
pub struct NameRegistry {
    by_original: HashMap<String, String>,
    taken: HashMap<String, String>,
}

impl NameRegistry {
    /// Reserves names that no property may take (the metadata columns).
    pub fn reserve(&mut self, name: &str) {
        self.taken.insert(name.to_string(), String::new());
    }

    /// The name for `original` (a full flattened path such as `user.createdAt`), whose
    /// normalized form is `normalized`.
    pub fn claim(&mut self, original: &str, normalized: String, max_len: usize) -> String {
        if let Some(name) = self.by_original.get(original) {
            return name.clone();
        }
        let name = match self.taken.get(&normalized) {
            Some(owner) if owner != original => {
                let suffix = format!("_{}", short_hash(original));
                let base = shorten(normalized, original, max_len.saturating_sub(suffix.len()));
                base + &suffix
            }
            _ => normalized,
        };
        self.taken.insert(name.clone(), original.to_string());
        self.by_original.insert(original.to_string(), name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_cases_and_cleans() {
        let cases = [
            ("id", "id"),
            ("createdAt", "created_at"),
            ("CreatedAt", "created_at"),
            ("userID", "user_id"),
            ("HTTPServerError", "http_server_error"),
            ("sha256sum", "sha256sum"),
            ("version2Name", "version2_name"),
            ("web-url", "web_url"),
            ("a.b c", "a_b_c"),
            ("  padded  ", "padded"),
            ("名前", "_"),
            ("名前id", "id"),
            ("$ref", "ref"),
            ("_links", "_links"),
            ("trailing_", "trailing_"),
            ("123", "_123"),
            ("", "_"),
            ("ALLCAPS", "allcaps"),
            ("a__b", "a__b"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input, 63), expected, "{input:?}");
        }
    }

    #[test]
    fn long_names_keep_a_prefix_and_a_hash() {
        let long = "a".repeat(100);
        let other = format!("{}b", "a".repeat(99));
        let n1 = normalize(&long, 63);
        let n2 = normalize(&other, 63);
        assert_eq!(n1.len(), 63);
        assert!(n1.starts_with("aaaa"));
        assert_ne!(n1, n2);
        assert_eq!(n1, normalize(&long, 63), "stable");
    }

    #[test]
    fn collisions_are_resolved_by_schema_order() {
        let mut reg = NameRegistry::default();
        reg.reserve("_observes_id");
        let a = reg.claim("fooBar", normalize("fooBar", 63), 63);
        let b = reg.claim("foo_bar", normalize("foo_bar", 63), 63);
        let c = reg.claim("_observes_id", normalize("_observes_id", 63), 63);
        assert_eq!(a, "foo_bar");
        assert_eq!(b, format!("foo_bar_{}", short_hash("foo_bar")));
        assert_eq!(c, format!("_observes_id_{}", short_hash("_observes_id")));
        assert_eq!(
            reg.claim("fooBar", "foo_bar".into(), 63),
            "foo_bar",
            "same name twice"
        );
    }
}
