"""voxray.corpus"""
