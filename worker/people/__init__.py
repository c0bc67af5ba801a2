"""The people core: columns, rows, the directory rules, and the in-order apply."""
