@echo off
rem 4.2) data_src util faceset resize: resize the faces of data_src/aligned (landmarks and masks
rem follow). Asks the size.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" facesettool resize ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
