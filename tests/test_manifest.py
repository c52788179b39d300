def test_manifest_is_found_through_the_entry_point():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-var-emitter")
    assert manifest.name == "napari-var-emitter"
