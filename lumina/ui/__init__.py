"""UI context: collaborative documents and visualizations."""
