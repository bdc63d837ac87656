@echo off
rem Set up .venv (once) and run the whole test suite.
call "%~dp0_venv.bat" requirements-dev.txt || (pause & exit /b 1)
cd /d "%~dp0.."
"%VENV_PY%" -m pytest tests -q -p no:cacheprovider %*
pause
