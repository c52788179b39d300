"""`make napari`: napari with both widgets docked and the sample stack loaded."""

import napari

PLUGIN = "napari-var-emitter"

if __name__ == "__main__":
    viewer = napari.Viewer()
    viewer.open_sample(PLUGIN, "simulated")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Predict emitters")
    viewer.window.add_plugin_dock_widget(PLUGIN, "Fine-tune model", tabify=True)
    napari.run()
