//! Flags of the OpenAI-compatible HTTP front end (the reference's "Frontend" group).

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[command(next_help_heading = "Frontend")]
pub struct FrontendArgs {
    /// Host name or address to listen on (default: all interfaces).
    #[arg(long)]
    pub host: Option<String>,

    /// Port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,

    /// Listen on this Unix domain socket instead of host and port.
    #[arg(long, value_name = "PATH")]
    pub uds: Option<PathBuf>,

    /// Log level of the HTTP server.
    #[arg(long, default_value = "info", value_parser = ["critical", "debug", "error", "info", "trace", "warning"])]
    pub uvicorn_log_level: String,

    /// Do not write an access-log line per HTTP request.
    #[arg(long)]
    pub disable_uvicorn_access_log: bool,

    /// Allow credentials in cross-origin (CORS) requests.
    #[arg(long)]
    pub allow_credentials: bool,

    /// Origins allowed by CORS; a list or a JSON list such as '["https://a.example"]'.
    #[arg(long, num_args = 1.., default_values = ["*"])]
    pub allowed_origins: Vec<String>,

    /// HTTP methods allowed by CORS; a list or a JSON list.
    #[arg(long, num_args = 1.., default_values = ["*"])]
    pub allowed_methods: Vec<String>,

    /// HTTP headers allowed by CORS; a list or a JSON list.
    #[arg(long, num_args = 1.., default_values = ["*"])]
    pub allowed_headers: Vec<String>,

    /// Require one of these keys as a bearer token on API requests (also read from VLLM_API_KEY).
    #[arg(long, num_args = 1.., value_name = "KEY")]
    pub api_key: Vec<String>,

    /// LoRA adapters to serve, as name=path or as JSON objects with name, path and base_model_name.
    #[arg(long, num_args = 1.., value_name = "MODULE")]
    pub lora_modules: Vec<String>,

    /// Chat template: a file path, or the template itself on one line.
    #[arg(long)]
    pub chat_template: Option<String>,

    /// How message content is passed to the chat template.
    ///
    /// "string" renders content as one string; "openai" as a list of parts, like the OpenAI
    /// schema ([{"type": "text", "text": "..."}]); "auto" picks what the template expects.
    #[arg(long, default_value = "auto", value_parser = ["auto", "openai", "string"])]
    pub chat_template_content_format: String,

    /// Role given to the reply when the request asks for a generation prompt.
    #[arg(long, default_value = "assistant")]
    pub response_role: String,

    /// TLS private key file.
    #[arg(long, value_name = "PATH")]
    pub ssl_keyfile: Option<PathBuf>,

    /// TLS certificate file.
    #[arg(long, value_name = "PATH")]
    pub ssl_certfile: Option<PathBuf>,

    /// CA certificates used to check client certificates.
    #[arg(long, value_name = "PATH")]
    pub ssl_ca_certs: Option<PathBuf>,

    /// Reload the TLS context when the certificate files change.
    #[arg(long)]
    pub enable_ssl_refresh: bool,

    /// Client certificate requirement, as Python's ssl module numbers it (0 none, 1 optional, 2 required).
    #[arg(long, default_value_t = 0)]
    pub ssl_cert_reqs: i32,

    /// Path prefix under which a path-routing proxy exposes the server.
    #[arg(long)]
    pub root_path: Option<String>,

    /// Extra HTTP middleware (a Python import path in vLLM); may be repeated.
    #[arg(long)]
    pub middleware: Vec<String>,

    /// With logprobs, show tokens as "token_id:{id}" so that tokens that are not valid JSON text can be told apart.
    #[arg(long)]
    pub return_tokens_as_token_ids: bool,

    /// Run the HTTP front end in the engine's process.
    #[arg(long)]
    pub disable_frontend_multiprocessing: bool,

    /// Add an X-Request-Id header to responses (costs throughput at high request rates).
    #[arg(long)]
    pub enable_request_id_headers: bool,

    /// Let the model decide when to call tools; needs --tool-call-parser.
    #[arg(long)]
    pub enable_auto_tool_choice: bool,

    /// Leave tool definitions out of the prompt when tool_choice is "none".
    #[arg(long)]
    pub exclude_tools_when_tool_choice_none: bool,

    /// Parser that turns the model's tool-call output into OpenAI tool calls (for
    /// `tool_choice: "auto"`): hermes, llama3_json, llama4_json, mistral, pythonic, qwen3_xml,
    /// qwen3_coder.
    #[arg(long)]
    pub tool_call_parser: Option<String>,

    /// Plugin that registers more tool-call parsers.
    #[arg(long, default_value = "")]
    pub tool_parser_plugin: String,

    /// Tool servers as comma-separated host:port pairs, or "demo".
    #[arg(long)]
    pub tool_server: Option<String>,

    /// Logging configuration file (JSON) for the server and its HTTP layer.
    #[arg(long, value_name = "PATH")]
    pub log_config_file: Option<PathBuf>,

    /// Longest prompt (characters or token ids) printed in request logs; unlimited if unset.
    #[arg(long)]
    pub max_log_len: Option<usize>,

    /// Do not serve the OpenAPI schema and the documentation pages.
    #[arg(long)]
    pub disable_fastapi_docs: bool,

    /// Report prompt_tokens_details in usage.
    #[arg(long)]
    pub enable_prompt_tokens_details: bool,

    /// Track the number of requests in flight (server load metrics).
    #[arg(long)]
    pub enable_server_load_tracking: bool,

    /// Include usage in every response, streamed or not.
    #[arg(long)]
    pub enable_force_include_usage: bool,

    /// Serve /get_tokenizer_info (it may reveal the chat template and tokenizer settings).
    #[arg(long)]
    pub enable_tokenizer_info_endpoint: bool,

    /// Also log the generated outputs, not only the requests.
    #[arg(long)]
    pub enable_log_outputs: bool,

    /// Largest incomplete HTTP event (header or body) in bytes, against header abuse.
    #[arg(long, default_value_t = 4_194_304)]
    pub h11_max_incomplete_event_size: usize,

    /// Most HTTP headers accepted in one request, against header abuse.
    #[arg(long, default_value_t = 256)]
    pub h11_max_header_count: usize,
}
