//! STRP, the stream server's wire protocol: header, request and response payloads, the
//! Message layout inside FETCH responses, error codes, murmur3 partitioning. No I/O: both the
//! server and the clients use it.
