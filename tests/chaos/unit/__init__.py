"""Tests of the chaos lab's pure code: the checker and its rules, the table, triggers,
the bench's arithmetic. No namespaces, no processes."""
