"""Tools on finished studies: export a ticket, compare studies, check importance estimators."""
