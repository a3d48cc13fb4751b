"""The `sectionrank` command line: the top of the package graph, one thin call into the libraries each."""
