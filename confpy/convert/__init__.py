"""``confpy convert``: confd's Go text/template templates to confpy's Jinja.

lexer -> parser (nodes) -> emit (statements; exprs and functions for expressions,
scope for variables, types for what is known of a value) -> layout (Jinja source with
Go's exact whitespace); confdir converts a whole confdir, command is the CLI, check
renders the result from a data file.
"""
