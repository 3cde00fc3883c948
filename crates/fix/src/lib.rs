//! FIX tag=value codec and session layer.
