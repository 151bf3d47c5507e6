//! Name rules shared by the parser, validation and code generation.

/// `UploadQueue` → `upload_queue`, `HTTPCache` → `http_cache`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `files` → `Files`, `upload_queue` → `UploadQueue`.
pub fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Whether `id` is `<name>@v<N>`: lowercase dot/dash separated name, N >= 1.
pub fn valid_contract_id(id: &str) -> bool {
    let Some((name, version)) = id.split_once('@') else {
        return false;
    };
    let name_ok = !name.is_empty()
        && name.split(['.', '-']).all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    name_ok && version_number(version).is_some()
}

fn version_number(version: &str) -> Option<u64> {
    let digits = version.strip_prefix('v')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `documents@v1` → (`documents`, `v1`).
pub fn split_id(id: &str) -> (&str, &str) {
    id.split_once('@').unwrap_or((id, "v1"))
}

/// Whether `name` is `<Group>.<Leaf>` in PascalCase.
pub fn valid_surface_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            p.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && p.chars().all(|c| c.is_ascii_alphanumeric())
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Whether `alias` is a snake_case Rust-friendly name.
pub fn valid_alias(alias: &str) -> bool {
    alias.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && alias
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `local` is a valid capability local name (`read`, `files.write`).
pub fn valid_capability(local: &str) -> bool {
    !local.is_empty()
        && local.split(['.', '-', '_']).all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The case-normalized form used to detect colliding names.
pub fn normalized(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake() {
        assert_eq!(snake_case("Items"), "items");
        assert_eq!(snake_case("UploadQueue"), "upload_queue");
        assert_eq!(snake_case("HTTPCache"), "http_cache");
        assert_eq!(snake_case("ListAll"), "list_all");
        assert_eq!(snake_case("V2Items"), "v2_items");
    }

    #[test]
    fn ids() {
        assert!(valid_contract_id("documents@v1"));
        assert!(valid_contract_id("trellis.state@v12"));
        assert!(valid_contract_id("my-svc@v2"));
        for bad in [
            "Documents@v1",
            "documents",
            "documents@1",
            "documents@v0",
            "@v1",
            "a..b@v1",
            "a@v01",
        ] {
            assert!(!valid_contract_id(bad), "{bad}");
        }
    }

    #[test]
    fn surfaces() {
        assert!(valid_surface_name("Files.List"));
        assert!(!valid_surface_name("files.list"));
        assert!(!valid_surface_name("Files"));
        assert!(!valid_surface_name("Files.List.All"));
    }
}
