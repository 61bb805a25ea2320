//! GraphQL names from spec names.

/// `blog_posts` → `BlogPosts`.
pub fn pascal(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Whether `s` is a GraphQL name that can be an enum value.
pub fn enum_value_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !matches!(s, "true" | "false" | "null")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pascal("posts"), "Posts");
        assert_eq!(pascal("blog_posts"), "BlogPosts");
        assert!(enum_value_name("public"));
        assert!(!enum_value_name("9lives"));
        assert!(!enum_value_name("a-b"));
        assert!(!enum_value_name("null"));
    }
}
