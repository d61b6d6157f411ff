"""Pure rules and records: no I/O, so 2000-VM planning is a fast function."""
