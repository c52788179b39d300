"""The napari plugin: readers, writer, sample data and widgets declared in napari.yaml."""
