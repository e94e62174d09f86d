//! OWNER: lead.
