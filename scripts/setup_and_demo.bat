@echo off
rem Set up .venv (once) and run the main job on the bundled demo workspace.
call "%~dp0_venv.bat" requirements.txt || (pause & exit /b 1)
cd /d "%~dp0.."
"%VENV_PY%" main.py demo --workspace "%CD%\workspace" %*
pause
