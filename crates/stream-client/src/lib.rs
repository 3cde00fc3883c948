//! Async client for the STRP stream server.
