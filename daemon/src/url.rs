//! The server URL as users type it. `http://host:8000`, `http://host:8000/` and
//! `http://host:8000/v1` name the same server (as do `http://host/api` and `http://host/api/v1`
//! behind a proxy's `--root-path`); the clients (`vllm chat`, `complete`, `tui`, `bench serve`)
//! all go through these two functions.

/// The server's root: `url` without trailing slashes and without a final `/v1`.
pub fn server_root(url: &str) -> String {
    let t = url.trim().trim_end_matches('/');
    t.strip_suffix("/v1").unwrap_or(t).to_string()
}

/// The base of the OpenAI API: the server's root plus `/v1`.
pub fn api_base(url: &str) -> String {
    format!("{}/v1", server_root(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_names_the_same_server() {
        for u in [
            "http://h:8000",
            "http://h:8000/",
            "http://h:8000/v1",
            "http://h:8000/v1/",
            " http://h:8000/v1 ",
        ] {
            assert_eq!(server_root(u), "http://h:8000", "{u}");
            assert_eq!(api_base(u), "http://h:8000/v1", "{u}");
        }
        assert_eq!(api_base("https://h/api"), "https://h/api/v1");
        assert_eq!(api_base("https://h/api/v1"), "https://h/api/v1");
        // Only a whole final `/v1` segment is the API's.
        assert_eq!(api_base("http://h/xv1"), "http://h/xv1/v1");
    }
}
