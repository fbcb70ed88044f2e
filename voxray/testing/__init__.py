"""voxray.testing"""
