//! OWNER: helper A.
